package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/wakeup"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// Messages enqueued through an Outbox with a Notifier (no NOTIFY in the
// enqueueing transactions) are delivered, each once, woken by the
// Notifier's announcements.
func TestDeliveryWokenByTheNotifier(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	n, err := outbox.NewNotifier(b.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	b.outbox, _ = outbox.New(&outbox.Config{Notifier: n})
	// A sweep far beyond the test's patience: only the notifier can wake
	// the lanes in time.
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval = time.Hour }))
	waitReady(t, b)
	b.enqueue(t, 200, 1, func(i int) string { return "" }) // 200 transactions
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != 200 {
		t.Fatalf("statuses %v", c)
	}
	if seen := b.checkKeys(t); len(seen) != 200 {
		t.Fatalf("%d messages reached the sink", len(seen))
	}
}

// A message committed with no notification at all (its Notifier cannot
// reach the database: its announcement is lost) is still delivered within the
// documented bound, SweepInterval, by the lane's own sweep.
func TestUnannouncedMessageIsFoundBySweep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ob := unannounced(t)
	const sweep = 500 * time.Millisecond
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval = sweep }))
	waitReady(t, b)
	if _, err := ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{"i":1,"key":""}`)}); err != nil {
		t.Fatal(err)
	}
	took := b.waitFirstDelivery(t, time.Now(), sweep+time.Second, "the commit, without any notification")
	t.Logf("delivered %s after the commit without any notification (sweep %s)", took, sweep)
}

// waitFirstDelivery waits until the sink has a request, at most bound after
// since (the event named after), and returns how long after since it came.
func (b bundle) waitFirstDelivery(t *testing.T, since time.Time, bound time.Duration, after string) time.Duration {
	t.Helper()
	for len(b.sink.Accepted()) == 0 {
		if time.Since(since) > bound {
			t.Fatalf("not delivered %s after %s (bound %s)", time.Since(since), after, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b.sink.Accepted()[0].At.Sub(since).Round(time.Millisecond)
}

// waitReady waits until the dispatcher under test holds every lane.
func waitReady(t *testing.T, b bundle) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_lanes WHERE owner IS NOT NULL AND lease_until > now()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 32 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lanes held", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A commit wakes the lanes of its own destination only, with a Notifier and
// without one: another destination's lanes are not claimed for it (each
// woken lane walks its keys' heads, a failing destination's across its
// whole backlog of keys). Sweeps are an hour apart here, so after start-up
// nothing else claims "other"'s lanes, and the sink's messages arrive only
// if their wake-ups reached the sink's lanes.
func TestCommitsWakeOnlyTheirDestinationsLanes(t *testing.T) {
	t.Parallel()
	if wakeup.DestBit("sink") == wakeup.DestBit("other") {
		t.Fatal("the test needs two destinations with different bits")
	}
	for _, withNotifier := range []bool{true, false} {
		t.Run(fmt.Sprintf("notifier=%t", withNotifier), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if withNotifier {
				n, err := outbox.NewNotifier(b.pool, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = n.Stop(context.Background()) })
				b.outbox, _ = outbox.New(&outbox.Config{Notifier: n})
			}
			reg, m := newMetrics(t)
			other, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: b.sink.URL()})
			if err != nil {
				t.Fatal(err)
			}
			b.start(t, b.config(t, func(c *worker.Config) {
				c.SweepInterval, c.Metrics = time.Hour, m
				c.Destinations["other"] = other
			}))
			// Every lane's first claim is in; what start-up may still
			// add is one wake-up of each lane when the LISTEN connection
			// comes up.
			for claims(t, reg, "other") < 32 {
				time.Sleep(10 * time.Millisecond)
			}
			before := claims(t, reg, "other")
			const commits = 300
			b.enqueue(t, commits, 1, func(i int) string { return "" })
			if c := b.waitSettled(t, 30*time.Second); c["delivered"] != commits {
				t.Fatalf("statuses %v", c)
			}
			woken := claims(t, reg, "other") - before
			if woken > 32 {
				t.Fatalf("%d claims of another destination's lanes during %d commits to the sink (start-up accounts for at most 32)", woken, commits)
			}
			t.Logf("%d claims of the other destination's lanes during %d commits to the sink", woken, commits)
		})
	}
}
