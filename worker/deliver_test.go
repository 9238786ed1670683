package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/worker"
)

// gate is a destination that declares a bound (dispatch.Concurrent) but
// does not enforce it: every call waits for open, and the most calls in
// flight at once is what the worker sent.
type gate struct {
	bound             int
	open              chan struct{}
	inFlight, maxSeen atomic.Int64
}

func (g *gate) Concurrency() int { return g.bound }

func (g *gate) Deliver(ctx context.Context, _ dispatch.Message) dispatch.Result {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.maxSeen.Load(); n > m && !g.maxSeen.CompareAndSwap(m, n); m = g.maxSeen.Load() {
	}
	select {
	case <-g.open:
		return dispatch.Result{Outcome: dispatch.Delivered}
	case <-ctx.Done():
		return dispatch.Result{Outcome: dispatch.Retry, Err: ctx.Err()}
	}
}

// A destination that bounds its calls in flight gets at most that many
// calls from a lane's batch at once: the worker runs no more goroutines
// for it (one per ordering key would only wait for the bound). 60 keys of
// one lane, bound 3: 60 calls at once on the code before.
func TestABoundedDestinationGetsNoMoreCallsThanItsBound(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var keys []string
	rows, err := b.pool.Query(ctx, `SELECT k FROM (SELECT 'bounded-' || i AS k FROM generate_series(1, 10000) i) s
WHERE (hashtext(k) & 2147483647) % 32 = 7 LIMIT 60`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if rows.Err() != nil || len(keys) != 60 {
		t.Fatalf("keys of lane 7: %d, %v", len(keys), rows.Err())
	}
	b.enqueue(t, len(keys), len(keys), func(i int) string { return keys[i] })

	g := &gate{bound: 3, open: make(chan struct{})}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": g}
	}))
	waitFor(t, 10*time.Second, "3 calls in flight", func() bool { return g.inFlight.Load() >= 3 })
	close(g.open)
	waitFor(t, 20*time.Second, "every message delivered", func() bool { return b.counts(t)["delivered"] == len(keys) })
	if m := g.maxSeen.Load(); m != 3 {
		t.Fatalf("at most %d calls were in flight at once; want the bound, 3", m)
	}
}
