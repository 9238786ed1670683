package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// Cancelling the context given to Start stops the dispatcher as Stop does
// with an expired context: the delivery in flight is cut off and recorded
// as abandoned, the leases are released, the dispatcher deregisters; Stop
// afterwards has nothing left to do.
func TestCancellingStartContextStopsTheDispatcher(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bg := context.Background()
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	d, msg := hangingDispatcher(ctx, t, b)
	cancel()

	// Stopped: no lane held, no registration, the cut-off attempt recorded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, registered, attempts := stopState(t, b, d, msg)
		if held == 0 && registered == 0 && len(attempts) == 1 && attempts[0].Outcome == outbox.OutcomeAbandoned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the cancel: %d lanes held, registered %d, %d attempts (want 1 abandoned)", held, registered, len(attempts))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.Ready() {
		t.Fatal("a stopped dispatcher reports ready")
	}
	if m, err := b.outbox.Get(bg, b.pool, msg); err != nil || m.Status != outbox.StatusPending {
		t.Fatalf("the cut-off message: %+v, %v; want it pending, to be sent again", m, err)
	}
	if err := d.Stop(bg); err != nil {
		t.Fatalf("Stop after the cancel: %v, want nil", err)
	}
}
