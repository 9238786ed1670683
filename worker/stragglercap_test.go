package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// gated delivers a message whose payload is "hang-N" only once open(N) was
// called, any other at once, and counts the calls per message.
type gated struct {
	mu    sync.Mutex
	gates map[string]chan struct{}
	calls map[uuid.UUID]int
}

func (g *gated) gate(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates[name] == nil {
		g.gates[name] = make(chan struct{})
	}
	return g.gates[name]
}

func (g *gated) open(name string) { close(g.gate(name)) }

func (g *gated) count(id uuid.UUID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id]
}

func (g *gated) Deliver(ctx context.Context, m dispatch.Message) dispatch.Result {
	g.mu.Lock()
	g.calls[m.ID]++
	g.mu.Unlock()
	if p := string(m.Payload); strings.HasPrefix(p, "hang-") {
		select {
		case <-g.gate(p):
		case <-ctx.Done():
			return dispatch.Result{Outcome: dispatch.Retry, Err: ctx.Err()}
		}
	}
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// A lane holding its most stragglers waits for its next batch whole; a
// straggler ending meanwhile is recorded, its key freed, and the batch
// left as a straggler in its turn. Its result waited for the whole batch
// (a hanging request: the destination's timeout), and the lane with it.
func TestAStragglerEndingAtTheCapIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := &gated{gates: map[string]chan struct{}{}, calls: map[uuid.UUID]int{}}
	b.start(t, b.config(t, func(c *worker.Config) { c.Destinations = map[string]dispatch.Destination{"sink": g} }))
	waitReady(t, b)
	var used []string
	enqueue := func(payload string) uuid.UUID {
		t.Helper()
		key := laneNeighbour(t, b, used...)
		used = append(used, key)
		e, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	// Each hanging request a batch of its own, left as a straggler once a
	// message of the lane committed after it is delivered.
	const most = 4 // maxStragglers
	var hung []uuid.UUID
	for i := range most {
		hung = append(hung, enqueue(fmt.Sprintf("hang-%d", i)))
		waitFor(t, 20*time.Second, "a hanging request sent", func() bool { return g.count(hung[i]) == 1 })
		probe := enqueue("probe")
		waitFor(t, 20*time.Second, "the lane going on beside its hanging request", func() bool { return g.count(probe) == 1 })
	}
	last := enqueue("hang-last")
	waitFor(t, 20*time.Second, "the last hanging request sent", func() bool { return g.count(last) == 1 })
	g.open("hang-0")
	waitFor(t, 20*time.Second, "the first straggler's result stored while the lane's batch still hangs", func() bool {
		m, err := b.outbox.Get(ctx, b.pool, hung[0])
		return err == nil && m.Status == outbox.StatusDelivered
	})
	probe := enqueue("probe")
	waitFor(t, 20*time.Second, "the lane going on beside its hanging batch, once below its most stragglers", func() bool { return g.count(probe) == 1 })
	for i := 1; i < most; i++ {
		g.open(fmt.Sprintf("hang-%d", i))
	}
	g.open("hang-last")
	if counts := b.waitSettled(t, 20*time.Second); counts["delivered"] != len(used) {
		t.Fatalf("%v, want %d delivered", counts, len(used))
	}
	for _, id := range append(hung, last) {
		if n := g.count(id); n != 1 {
			t.Errorf("message %s sent %d times, want 1", id, n)
		}
	}
}
