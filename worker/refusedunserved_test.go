package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/worker"
)

// The unserved check refused (SELECT on outbox_dispatchers revoked) holds
// /readyz at 503: it is tried again every acquire interval, not every ten,
// so a GRANT ends the 503 within a round or two (an operator's trial waited
// 47 s at a 5 s acquire_interval). Here the interval is 1 s: the old code's
// next check came 10 s after the grant at worst, past the 5 s allowed.
func TestARefusedUnservedCheckIsTriedAgainEachRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	admin := pgtest.Connect(t, dbURL)
	roleURL, role := worker.RuntimeRoleURL(t, dbURL, "outboxd_nounserved")
	b := setup(t)
	b.pool = pgtest.Connect(t, roleURL)
	d := b.start(t, b.config(t, func(c *worker.Config) { c.AcquireInterval = time.Second; c.LeaseTTL = 4 * time.Second }))
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	if _, err := admin.Exec(ctx, "REVOKE SELECT ON outboxd.outbox_dispatchers FROM "+role); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the unserved check refused", func() bool {
		return slices.Contains(d.Refused(), "checking for unserved destinations")
	})
	if _, err := admin.Exec(ctx, "GRANT SELECT ON outboxd.outbox_dispatchers TO "+role); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the unserved check no longer refused, 5 s after the grant", func() bool {
		return !slices.Contains(d.Refused(), "checking for unserved destinations")
	})
}
