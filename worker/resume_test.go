package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// A resume takes effect within AcquireInterval (each dispatcher reloads the
// paused destinations that often), not at the lanes' next sweep: a lane that
// found its destination paused idles until then, and the reload that sees
// the resume wakes it. Sweeps are an hour apart here.
func TestResumeTakesEffectWithinAcquireInterval(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.outbox.PauseDestination(ctx, b.pool, "sink", "maintenance"); err != nil {
		t.Fatal(err)
	}
	const acquire = 200 * time.Millisecond
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval, c.AcquireInterval = time.Hour, acquire }))
	waitReady(t, b)
	// Its wake-up finds the destination paused.
	b.enqueue(t, 1, 1, func(int) string { return "" })
	if err := b.outbox.ResumeDestination(ctx, b.pool, "sink"); err != nil {
		t.Fatal(err)
	}
	// A reload starts within AcquireInterval; it and the claim it wakes
	// take a few milliseconds more (a second here, for a loaded machine).
	took := b.waitFirstDelivery(t, time.Now(), acquire+time.Second, "the resume")
	t.Logf("delivered %s after the resume (acquire_interval %s)", took, acquire)
}
