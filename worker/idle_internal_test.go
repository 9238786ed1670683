package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// An idle probe that hangs (here behind a lock; in production a connection
// left half open by a failover) gives up after a sweep, at least a second
// (docs/design.md, "Idle lanes park"): its lanes then claim, rather than
// stay blind to commits whose wake-up was lost.
func TestAHangingIdleProbeGivesUpAfterASecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	d, err := New(pool, &Config{SweepInterval: 100 * time.Millisecond, DisableRiver: true,
		Destinations: map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(
			func(context.Context, dispatch.Message) dispatch.Result {
				return dispatch.Result{Outcome: dispatch.Delivered}
			})}})
	if err != nil {
		t.Fatal(err)
	}
	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		err  error
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		start := time.Now()
		_, err := d.probeLanes(ctx, []Lane{{"sink", 3}})
		done <- answer{err, time.Since(start)}
	}()
	waitForLockWait(t, pool, "outbox_messages")
	select {
	case a := <-done:
		if !errors.Is(a.err, context.DeadlineExceeded) || a.took < time.Second {
			t.Fatalf("the probe answered %v after %s; want it to give up after 1 s", a.err, a.took)
		}
		t.Logf("the probe gave up after %s", a.took.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the probe still waits after 10 s")
	}
}
