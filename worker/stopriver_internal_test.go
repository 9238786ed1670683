package worker

import (
	"context"
	"testing"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// Stop's runners may all have ended (done closed) when its context expires:
// stopping River must still wait until River has stopped, and not fail
// because that context is over (which outboxd serve used to report as
// deliveries cut off, though none were).
func TestStopRiverWaitsForRiverWhateverStopsContext(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	d, err := New(pool, &Config{Destinations: map[string]dispatch.Destination{"ok": dispatch.DestinationFunc(
		func(context.Context, dispatch.Message) dispatch.Result {
			return dispatch.Result{Outcome: dispatch.Delivered}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, finished := d.beginStop()
	if !first {
		t.Fatal("a stop was under way already")
	}
	defer close(finished)
	d.cancel()
	<-d.done // the runners ended before Stop looked at its context
	d.abort()
	if err := d.stopRiver(); err != nil {
		t.Fatalf("stopping River: %v, want nil", err)
	}
	select {
	case <-d.river.Stopped():
	default:
		t.Fatal("River still running after stopRiver returned")
	}
}
