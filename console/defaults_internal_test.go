package console

import (
	"testing"
	"time"
)

// The defaults docs/operations.md states: 100 rows, 64 KiB shown, 10,000
// ids per audit row.
func TestDefaultAuditIDs(t *testing.T) {
	t.Parallel()
	c := (&Config{}).withDefaults()
	if c.PageSize != 100 || c.MaxShown != 64<<10 || c.AuditIDs != 10000 {
		t.Fatalf("defaults: page %d, shown %d, audit ids %d", c.PageSize, c.MaxShown, c.AuditIDs)
	}
}

// The request deadline and the pool docs/operations.md states: 10 s
// (DefaultRequestTimeout, also the pool's statement_timeout), 3
// connections (PoolSize), a pause reason of at most 500 bytes (maxReason),
// action bodies of at most 1 MiB (maxForm).
func TestRequestDefaults(t *testing.T) {
	t.Parallel()
	c := (&Config{}).withDefaults()
	if DefaultRequestTimeout != 10*time.Second || c.RequestTimeout != DefaultRequestTimeout {
		t.Fatalf("request deadline %s (default %s), want 10s", c.RequestTimeout, DefaultRequestTimeout)
	}
	if PoolSize != 3 || maxReason != 500 || maxForm != 1<<20 {
		t.Fatalf("PoolSize %d, maxReason %d, maxForm %d; want 3, 500, 1 MiB", PoolSize, maxReason, maxForm)
	}
}
