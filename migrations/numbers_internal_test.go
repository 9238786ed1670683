package migrations

import (
	"testing"
	"time"
)

// The numbers the docs give for the online migrations, checked against
// the code: the scrub's 1,000 rows per transaction (docs/receiving.md)
// and the ALTER's 200 ms lock waits, up to 50 (docs/design.md).
func TestMigrationDocumentedNumbers(t *testing.T) {
	for _, tc := range []struct {
		doc       string
		got, want any
	}{
		{"the scrub rewrites 1,000 rows per transaction", scrubBatch, 1000},
		{"an ALTER waits 200 ms for its lock", alterLockWait, 200 * time.Millisecond},
		{"up to 50 times", alterTries, 50},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: the code has %v", tc.doc, tc.got)
		}
	}
}
