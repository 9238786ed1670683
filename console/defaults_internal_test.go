package console

import "testing"

// The defaults docs/operations.md states: 100 rows, 64 KiB shown, 10,000
// ids per audit row.
func TestDefaultAuditIDs(t *testing.T) {
	t.Parallel()
	c := (&Config{}).withDefaults()
	if c.PageSize != 100 || c.MaxShown != 64<<10 || c.AuditIDs != 10000 {
		t.Fatalf("defaults: page %d, shown %d, audit ids %d", c.PageSize, c.MaxShown, c.AuditIDs)
	}
}
