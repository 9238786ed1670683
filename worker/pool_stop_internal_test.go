package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// oneAtATime is a destination that bounds its calls to one (the pool's
// path) and holds the message named blocked until release closes.
type oneAtATime struct {
	blocked  uuid.UUID
	inFlight chan struct{}
	release  chan struct{}
	others   atomic.Int64
}

func (d *oneAtATime) Concurrency() int { return 1 }

func (d *oneAtATime) Deliver(ctx context.Context, m dispatch.Message) dispatch.Result {
	if m.ID != d.blocked {
		d.others.Add(1)
		return dispatch.Result{Outcome: dispatch.Delivered}
	}
	d.inFlight <- struct{}{}
	<-d.release
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// A runner told to stop (a lane handed to another dispatcher) leaves its
// batch's messages still queued for the destination's pool, and returns
// once its own attempts in flight are done: it does not wait behind
// another lane's slow attempt for the pool to reach messages it would not
// send anyway.
func TestAStoppedRunnerDoesNotWaitForThePoolsQueue(t *testing.T) {
	t.Parallel()
	dest := &oneAtATime{blocked: uuid.New(), inFlight: make(chan struct{}), release: make(chan struct{})}
	d, err := New(pgtest.Connect(t, pgtest.URL(t)), &Config{ID: "me", DisableRiver: true,
		Destinations: map[string]dispatch.Destination{"x": dest}})
	if err != nil {
		t.Fatal(err)
	}
	p := d.pools["x"]
	far := d.mono() + time.Hour
	busy := newLaneRunner(d, Lane{Destination: "x", Lane: 2}, 1, far)
	go busy.deliver([]claimed{{Message: dispatch.Message{ID: dest.blocked, Destination: "x"}}})
	<-dest.inFlight // the pool's one slot is taken
	defer close(dest.release)

	stopping := newLaneRunner(d, Lane{Destination: "x", Lane: 1}, 1, far)
	batch := []claimed{
		{Message: dispatch.Message{ID: uuid.New(), Destination: "x"}},
		{Message: dispatch.Message{ID: uuid.New(), Destination: "x", OrderingKey: "k", Seq: 1}},
		{Message: dispatch.Message{ID: uuid.New(), Destination: "x", OrderingKey: "k", Seq: 2}},
	}
	done := make(chan []result, 1)
	go func() { res, _ := stopping.deliver(batch); done <- res }()
	deadline := time.Now().Add(10 * time.Second)
	for queued := 0; queued < 2; {
		p.mu.Lock()
		queued = len(p.queue) - p.head
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d groups queued in the pool, want 2", queued)
		}
		time.Sleep(time.Millisecond)
	}
	stopping.signalStop()
	select {
	case res := <-done:
		if len(res) != 0 {
			t.Fatalf("%d results; nothing of the stopped runner's batch was to be sent", len(res))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped runner still waits for the pool, behind another lane's attempt")
	}
	if n := dest.others.Load(); n != 0 {
		t.Fatalf("%d of the stopped runner's messages were sent", n)
	}
}
