package worker_test

import (
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// A lane runner that delivered an unkeyed message claims again only when a
// commit wakes it (or its sweep comes): it used to claim at once after every
// such batch, which found nothing, since whatever was committed meanwhile
// wakes the lane anyway. Each message here is committed after the one
// before is recorded, so it wakes its lane once, and that claim takes it:
// one claim per message, where the old rule made two. Sweeps are an hour
// apart, so each message also proves that its wake-up alone brings it out.
func TestAnUnkeyedDeliveryIsNotFollowedByAnEmptyClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval, c.Metrics = time.Hour, m }))
	for claims(t, reg, "sink") < 32 { // every lane's first claim
		time.Sleep(10 * time.Millisecond)
	}
	before := claims(t, reg, "sink")
	const n = 100
	for i := range n {
		b.enqueue(t, 1, 1, func(int) string { return "" })
		if c := b.waitSettled(t, 30*time.Second); c["delivered"] != i+1 {
			t.Fatalf("after message %d: statuses %v", i+1, c)
		}
	}
	// Start-up may add a wake-up of each lane when the LISTEN connection
	// comes up (32); the old rule added n.
	if got := claims(t, reg, "sink") - before; got > n+32 {
		t.Fatalf("%d claims for %d unkeyed messages committed one at a time (at most %d: one each, and start-up's wake-ups)", got, n, n+32)
	} else {
		t.Logf("%d claims for %d messages", got, n)
	}
}
