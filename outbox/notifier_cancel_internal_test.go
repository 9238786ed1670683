package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cancelling Start's context stops the Notifier as Stop does: what
// committed is announced, the run ends, Stop then has nothing to do, and
// the Notifier may be started again.
func TestNotifierStopsWhenItsStartContextEnds(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	bg := context.Background()
	if err := b.n.Stop(bg); err != nil { // restart it under a context we cancel
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	if err := b.n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(bg, b.pool, func(tx pgx.Tx) error {
		_, err := b.ob.Enqueue(bg, tx, Message{Destination: "crm", Payload: []byte(`{}`)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b.n.mu.Lock()
	done := b.n.done
	b.n.mu.Unlock()
	cancel()

	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the Notifier still runs 10 s after its start context was cancelled")
	}
	select {
	case p := <-b.payloads:
		if p == "sentinel" {
			t.Fatalf("unexpected payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the committed enqueue was never announced")
	}
	if err := b.n.Stop(bg); err != nil {
		t.Fatalf("Stop after the cancel: %v", err)
	}
	if err := b.n.Start(bg); err != nil {
		t.Fatalf("a stopped Notifier cannot start again: %v", err)
	}
}
