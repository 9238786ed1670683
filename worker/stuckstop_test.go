package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/worker"
)

// deaf is a Destination that breaks the interface's contract: its Deliver
// ignores its context and returns only when released.
type deaf struct {
	entered  atomic.Int32
	released chan struct{}
}

func (d *deaf) Deliver(context.Context, dispatch.Message) dispatch.Result {
	d.entered.Add(1)
	<-d.released
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// Stop past its deadline waits a bounded time (worker.StuckGrace) for the
// deliveries it cancelled, then returns, naming them, instead of waiting
// for ever on a Destination that ignores its context (serve's shutdown
// then hung until the process was killed).
func TestStopReturnsBesideADeliveryThatIgnoresItsContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dest := &deaf{released: make(chan struct{})}
	defer close(dest.released)
	d := b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
	}))
	b.enqueue(t, 1, 1, func(int) string { return "k" })
	waitFor(t, 30*time.Second, "the delivery to begin", func() bool { return dest.entered.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(ctx) }()
	select {
	case err := <-stopped:
		if !errors.Is(err, worker.ErrAbandoned) || !strings.Contains(err.Error(), "did not return") {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(worker.StuckGrace + 30*time.Second): // only ends a failing test
		t.Fatal("Stop waited for ever on a delivery that ignores its context")
	}
	// The stuck delivery's lease lapses (nothing renews it any more: a
	// review saw it renewed for as long as the pool stayed open), and
	// another dispatcher on the same pool delivers the message.
	b.start(t, b.config(t, nil))
	waitFor(t, 30*time.Second, "the message delivered by the next dispatcher", func() bool { return len(b.sink.Accepted()) == 1 })
}

// A Destination that returns at its cancellation is not blamed when what
// follows it is slow: here the recording waits for lane rows the test
// holds locked, past StuckGrace. Stop waits for it (within its own
// budgets) and says nothing of deliveries left running (a review saw it
// blame the Destination).
func TestStopPastStuckGraceBlamesNoDestinationThatReturned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := newGate(0)
	d := b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": g}
	}))
	b.enqueue(t, 1, 1, func(int) string { return "k" })
	waitFor(t, 30*time.Second, "the delivery to begin", func() bool { return g.inFlight.Load() > 0 })
	ctx := context.Background()
	lock, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `SELECT * FROM outboxd.outbox_lanes FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = d.Stop(sctx)
	if !errors.Is(err, worker.ErrAbandoned) || strings.Contains(err.Error(), "did not return") {
		t.Fatalf("Stop: %v", err)
	}
}
