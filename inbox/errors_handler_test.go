package inbox_test

import (
	"errors"
	"testing"

	"github.com/outboxd/outboxd/inbox"
)

// A nil error marked Permanent or Transient is still a refusal or a retry
// with a text, never a nil-pointer panic when the receiver logs it.
func TestMarkingNilErrors(t *testing.T) {
	p, tr := inbox.Permanent(nil), inbox.Transient(nil)
	if p.Error() == "" || tr.Error() == "" || !inbox.IsPermanent(p) || inbox.IsPermanent(tr) {
		t.Fatalf("Permanent(nil) %q, Transient(nil) %q", p, tr)
	}
	if errors.Unwrap(tr) == nil {
		t.Error("Transient(nil) unwraps to nil")
	}
}
