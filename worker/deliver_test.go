package worker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/worker"
)

// gate is a destination that declares a bound (dispatch.Concurrent) but
// does not enforce it: every call waits for open, and the most calls in
// flight at once is what the worker sent.
type gate struct {
	bound             int
	inFlight, maxSeen atomic.Int64
	mu                sync.Mutex
	opened            chan struct{} // closed: calls return
}

func newGate(bound int) *gate { return &gate{bound: bound, opened: make(chan struct{})} }

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.opened)
}

// shut makes later calls wait again and forgets the most seen.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opened = make(chan struct{})
	g.maxSeen.Store(0)
}

func (g *gate) Concurrency() int { return g.bound }

func (g *gate) Deliver(ctx context.Context, _ dispatch.Message) dispatch.Result {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.maxSeen.Load(); n > m && !g.maxSeen.CompareAndSwap(m, n); m = g.maxSeen.Load() {
	}
	g.mu.Lock()
	opened := g.opened
	g.mu.Unlock()
	select {
	case <-opened:
		return dispatch.Result{Outcome: dispatch.Delivered}
	case <-ctx.Done():
		return dispatch.Result{Outcome: dispatch.Retry, Err: ctx.Err()}
	}
}

// A destination that bounds its calls in flight gets at most that many
// calls at once from all its lanes together: the worker runs no more
// goroutines for it (one per ordering key would only wait for the bound).
// First 60 keys of one lane (one claim: 60 calls at once on the code
// before), then 60 unkeyed messages over the 32 lanes.
func TestABoundedDestinationGetsNoMoreCallsThanItsBound(t *testing.T) {
	b := setup(t)
	g := newGate(3)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": g}
	}))
	keys := keysInLane7(t, b, 60)
	b.enqueue(t, len(keys), len(keys), func(i int) string { return keys[i] })
	waitFor(t, 10*time.Second, "3 calls in flight", func() bool { return g.inFlight.Load() >= 3 })
	g.open()
	waitFor(t, 20*time.Second, "the keys' messages delivered", func() bool { return b.counts(t)["delivered"] == 60 })
	if m := g.maxSeen.Load(); m != 3 {
		t.Fatalf("one lane: at most %d calls were in flight at once; want the bound, 3", m)
	}

	g.shut()
	b.enqueue(t, 60, 60, func(int) string { return "" })
	waitFor(t, 10*time.Second, "3 calls in flight", func() bool { return g.inFlight.Load() >= 3 })
	g.open()
	waitFor(t, 20*time.Second, "the unkeyed messages delivered", func() bool { return b.counts(t)["delivered"] == 120 })
	if m := g.maxSeen.Load(); m != 3 {
		t.Fatalf("all lanes: at most %d calls were in flight at once; want the bound, 3", m)
	}
}

// keysInLane7 returns n ordering keys that hash to lane 7.
func keysInLane7(t *testing.T, b bundle, n int) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT k FROM (SELECT 'lane7-' || i AS k FROM generate_series(1, 100 * $1::int) i) s
WHERE (hashtext(k) & 2147483647) % 32 = 7 LIMIT $1`, n)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) != n {
		t.Fatalf("keys of lane 7: %d of %d, %v", len(keys), n, err)
	}
	return keys
}
