package worker_test

import (
	"context"
	"runtime"
	"slices"
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
	keys              []string      // each call's ordering key, in the order they came
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

func (g *gate) Deliver(ctx context.Context, msg dispatch.Message) dispatch.Result {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.maxSeen.Load(); n > m && !g.maxSeen.CompareAndSwap(m, n); m = g.maxSeen.Load() {
	}
	g.mu.Lock()
	opened := g.opened
	g.keys = append(g.keys, msg.OrderingKey)
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
	keys := keysInLane(t, b, "bounded-", 7, 60)
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

// keysInLane returns n ordering keys (prefix and a number) that hash to
// lane.
func keysInLane(t *testing.T, b bundle, prefix string, lane, n int) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT k FROM (SELECT $1 || i AS k FROM generate_series(1, greatest(10000, 100 * $3::int)) i) s
WHERE (hashtext(k) & 2147483647) % 32 = $2::int LIMIT $3`, prefix, lane, n)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) != n {
		t.Fatalf("keys of lane %d: %d of %d, %v", lane, len(keys), n, err)
	}
	return keys
}

// boundOne starts a dispatcher whose "sink" is a gate of bound 1, holds
// one message of a key of lane 7 in flight and another key's message of
// lane 9 waiting in the pool behind it, and returns the dispatcher, the
// gate and the two keys.
func boundOne(t *testing.T, b bundle, first int) (*worker.Dispatcher, *gate, string, string) {
	t.Helper()
	g := newGate(1)
	d := b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": g}
	}))
	a, other := keysInLane(t, b, "first-", 7, 1)[0], keysInLane(t, b, "other-", 9, 1)[0]
	b.enqueue(t, first, first, func(int) string { return a })
	waitFor(t, 10*time.Second, "lane 7's first call", func() bool { return g.inFlight.Load() == 1 })
	b.enqueue(t, 1, 1, func(int) string { return other })
	waitFor(t, 10*time.Second, "lane 9's message waiting in the pool", func() bool { return worker.QueuedDeliveries(d, "sink") == 1 })
	return d, g, a, other
}

// A key with many messages in a batch does not keep the pool's goroutine
// while other lanes wait: after each message the key's next one goes to
// the back of the queue, as its goroutine went back into the bound's
// queue before the pool. Bound 1, ten messages of one key in flight: the
// other lane's message is the second call (the eleventh when a goroutine
// sent a whole key).
func TestAKeysMessagesTakeTurnsWithOtherLanes(t *testing.T) {
	b := setup(t)
	_, g, _, other := boundOne(t, b, 10)
	g.open()
	waitFor(t, 20*time.Second, "every message delivered", func() bool { return b.counts(t)["delivered"] == 11 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if at := slices.Index(g.keys, other); at != 1 {
		t.Fatalf("the other lane's message was call %d of %d; want 2", at+1, len(g.keys))
	}
}

// A lane whose lease is lost while its batch waits in the pool stops at
// once: what waits is dropped unsent (the lane's next holder sends it),
// not waited for behind the other lanes' calls.
func TestALostLeaseDoesNotWaitForThePool(t *testing.T) {
	b := setup(t)
	d, g, _, _ := boundOne(t, b, 1)
	stopped := worker.ExpireRunner(d, worker.Lane{Destination: "sink", Lane: 9})
	if stopped == nil {
		t.Fatal("lane 9 has no runner")
	}
	waitFor(t, 5*time.Second, "lane 9's runner stopped while lane 7's call is in flight", func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	})
	if n := worker.QueuedDeliveries(d, "sink"); n != 0 {
		t.Fatalf("%d deliveries still wait in the pool", n)
	}
	g.open()
	waitFor(t, 20*time.Second, "both messages delivered (lane 9 by its next runner)", func() bool { return b.counts(t)["delivered"] == 2 })
}

// goexiting is a bounded destination whose first call ends its goroutine
// (runtime.Goexit, as t.Fatal in a test's destination does); later calls
// deliver.
type goexiting struct{ calls atomic.Int64 }

// Concurrency is 1: a goroutine the pool lost would leave it none.
func (*goexiting) Concurrency() int { return 1 }

func (d *goexiting) Deliver(context.Context, dispatch.Message) dispatch.Result {
	if d.calls.Add(1) == 1 {
		runtime.Goexit()
	}
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// A delivery that ends its goroutine neither hangs its batch (and Stop
// with it) nor costs the pool a goroutine: the message stays pending and
// is sent again.
func TestAGoexitInADestinationHangsNothing(t *testing.T) {
	b := setup(t)
	dest := &goexiting{}
	d, err := worker.New(b.pool, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.enqueue(t, 4, 4, func(int) string { return "" })
	waitFor(t, 20*time.Second, "every message delivered", func() bool { return b.counts(t)["delivered"] == 4 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- d.Stop(ctx)
	}()
	waitFor(t, 10*time.Second, "Stop returned", func() bool { return len(stopped) == 1 })
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
