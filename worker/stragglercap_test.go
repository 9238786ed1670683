package worker_test

import (
	"context"
	"errors"
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

// gated delivers a message whose payload is "hang-N" only once open was
// called with that payload, fails one whose payload is "fail-N" then, and
// delivers any other at once; it counts the calls per message.
type gated struct {
	mu       sync.Mutex
	gates    map[string]chan struct{}
	calls    map[uuid.UUID]int
	returned map[uuid.UUID]int // calls that returned
}

// gatedLane starts a dispatcher whose destination is a gated, sweeping
// every 30 s (only wake-ups and freed keys bring a claim before it), and
// returns a func that enqueues a payload under a key.
func gatedLane(t *testing.T, mutate func(*worker.Config)) (bundle, *gated, func(key, payload string) uuid.UUID) {
	t.Helper()
	b := setup(t)
	g := newGated()
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations, c.SweepInterval = map[string]dispatch.Destination{"sink": g}, 30*time.Second
		if mutate != nil {
			mutate(c)
		}
	}))
	waitReady(t, b)
	return b, g, func(key, payload string) uuid.UUID {
		t.Helper()
		e, err := b.outbox.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
}

func newGated() *gated {
	return &gated{gates: map[string]chan struct{}{}, calls: map[uuid.UUID]int{}, returned: map[uuid.UUID]int{}}
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

func (g *gated) returns(id uuid.UUID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.returned[id]
}

func (g *gated) Deliver(ctx context.Context, m dispatch.Message) dispatch.Result {
	g.mu.Lock()
	g.calls[m.ID]++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.returned[m.ID]++
		g.mu.Unlock()
	}()
	p := string(m.Payload)
	if strings.HasPrefix(p, "hang-") || strings.HasPrefix(p, "fail-") {
		select {
		case <-g.gate(p):
		case <-ctx.Done():
			return dispatch.Result{Outcome: dispatch.Retry, Err: ctx.Err()}
		}
	}
	if strings.HasPrefix(p, "fail-") {
		return dispatch.Result{Outcome: dispatch.Retry, Err: errors.New("HTTP 500")}
	}
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// A lane holding its most stragglers waits for its next batch whole; a
// straggler ending meanwhile is recorded, its key freed (its next message
// sent at once, not at the sweep), and the batch left as a straggler in
// its turn. Its result waited for the whole batch (a hanging request: the
// destination's timeout), and the lane with it.
func TestAStragglerEndingAtTheCapIsRecorded(t *testing.T) {
	t.Parallel()
	b, g, enqueueFor := gatedLane(t, nil)
	ctx := context.Background()
	var used []string
	enqueue := func(payload string) uuid.UUID {
		t.Helper()
		key := laneNeighbour(t, b, used...)
		used = append(used, key)
		return enqueueFor(key, payload)
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
	// Behind the first hanging request, before the last batch is claimed:
	// its commit's wake-up is spent by then.
	behind := enqueueFor(used[0], "behind")
	last := enqueue("hang-last")
	waitFor(t, 20*time.Second, "the last hanging request sent", func() bool { return g.count(last) == 1 })
	g.open("hang-0")
	waitFor(t, 20*time.Second, "the first straggler's result stored while the lane's batch still hangs", func() bool {
		m, err := b.outbox.Get(ctx, b.pool, hung[0])
		return err == nil && m.Status == outbox.StatusDelivered
	})
	waitFor(t, 10*time.Second, "the freed key's next message sent before the sweep", func() bool { return g.count(behind) == 1 })
	probe := enqueue("probe")
	waitFor(t, 20*time.Second, "the lane going on beside its hanging batch, once below its most stragglers", func() bool { return g.count(probe) == 1 })
	for i := 1; i < most; i++ {
		g.open(fmt.Sprintf("hang-%d", i))
	}
	g.open("hang-last")
	if counts := b.waitSettled(t, 20*time.Second); counts["delivered"] != len(used)+1 {
		t.Fatalf("%v, want %d delivered", counts, len(used)+1)
	}
	for _, id := range append(hung, last) {
		if n := g.count(id); n != 1 {
			t.Errorf("message %s sent %d times, want 1", id, n)
		}
	}
}

// A straggler that ends while the lane's next batch is out has its key's
// next message claimed once that batch is recorded, not at the sweep: the
// signal of its end outlives the batch (a review found it spent by the
// batch's wait, and the message sent 4.9 s later, at a 5 s sweep).
func TestAStragglerEndingDuringABatchFreesItsKeyAtOnce(t *testing.T) {
	t.Parallel()
	b, g, enqueue := gatedLane(t, func(c *worker.Config) {
		c.Retry = worker.RetryPolicy{Base: time.Minute, Max: time.Minute, MaxAttempts: 50}
	})
	ctx := context.Background()
	keyA := laneNeighbour(t, b)
	keyB := laneNeighbour(t, b, keyA)
	keyC := laneNeighbour(t, b, keyA, keyB)
	hang := enqueue(keyA, "hang-A")
	waitFor(t, 20*time.Second, "the hanging request sent", func() bool { return g.count(hang) == 1 })
	probe := enqueue(keyC, "probe")
	waitFor(t, 20*time.Second, "the lane going on beside its hanging request", func() bool { return g.count(probe) == 1 })
	// Committed without a wake-up: none is left over to end the idle
	// after the next batch.
	e, err := unannounced(t).Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: keyA, Payload: []byte("A2")})
	if err != nil {
		t.Fatal(err)
	}
	next := e.ID
	failing := enqueue(keyB, "fail-B")
	waitFor(t, 20*time.Second, "the next batch out", func() bool { return g.count(failing) == 1 })
	g.open("hang-A") // ends while fail-B's batch is out
	waitFor(t, 10*time.Second, "the hanging request returned", func() bool { return g.returns(hang) == 1 })
	// Its end is signalled microseconds after it returned: the order the
	// regression needs (what is checked below holds in either order).
	time.Sleep(50 * time.Millisecond)
	g.open("fail-B") // a batch that frees nothing: the sweep would be next
	waitFor(t, 5*time.Second, "the freed key's next message sent before the sweep", func() bool { return g.count(next) == 1 })
	if n := g.count(hang); n != 1 {
		t.Fatalf("the hanging request sent %d times, want 1", n)
	}
}
