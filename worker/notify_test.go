package worker_test

import (
	"context"
	"testing"
	"time"

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

// A message committed with no notification at all (its Notifier never
// started, as if its announcement were lost) is still delivered within the
// documented bound, SweepInterval, by the lane's own sweep.
func TestUnannouncedMessageIsFoundBySweep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	silent, err := outbox.NewNotifier(b.pool, nil) // never started
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := outbox.New(&outbox.Config{Notifier: silent})
	const sweep = 500 * time.Millisecond
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval = sweep }))
	waitReady(t, b)
	if _, err := ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{"i":1,"key":""}`)}); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	for len(b.sink.Accepted()) == 0 {
		if time.Since(committed) > sweep+time.Second {
			t.Fatalf("not delivered %s after the commit; the sweep bound is %s", time.Since(committed), sweep)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("delivered %s after the commit without any notification (sweep %s)", b.sink.Accepted()[0].At.Sub(committed).Round(time.Millisecond), sweep)
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
