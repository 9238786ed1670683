package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A lane finds its due retries, and the next message of a key it just
// delivered, without walking the heads of its keys (worker/walk.go): with
// the sweep's walks paced out of reach here, 20 messages over 5 keys, each
// failing twice before it is delivered, all arrive, in order and once
// each, while the claims that walked are only the start-up's and those
// of the commit's wake-ups. (Before walk.go every claim walked.)
func TestSweepsFindRetriesWithoutWalking(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := worker.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		tries     = map[uuid.UUID]int{}
		delivered = map[string][]int64{}
	)
	flaky := dispatch.DestinationFunc(func(_ context.Context, msg dispatch.Message) dispatch.Result {
		mu.Lock()
		defer mu.Unlock()
		if tries[msg.ID]++; tries[msg.ID] <= 2 {
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
		}
		delivered[msg.OrderingKey] = append(delivered[msg.OrderingKey], msg.Seq)
		return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
	})
	cfg := b.config(t, func(c *worker.Config) {
		c.Metrics = m
		c.Retry = worker.RetryPolicy{Base: 50 * time.Millisecond, Max: 50 * time.Millisecond, MaxAttempts: 10}
		c.Destinations = map[string]dispatch.Destination{"flaky": flaky}
	})
	b.startWith(t, cfg, func(d *worker.Dispatcher) { worker.SetWalkPace(d, 1<<30) })
	waitReady(t, b)
	for claims(t, reg, "flaky") < 32 { // every lane's first claim
		time.Sleep(10 * time.Millisecond)
	}
	walksBefore, claimsBefore := walks(t, reg, "flaky"), claims(t, reg, "flaky")

	const keys, perKey = 5, 4
	var msgs []outbox.Message
	for i := range keys * perKey {
		msgs = append(msgs, outbox.Message{Destination: "flaky", OrderingKey: fmt.Sprintf("k%d", i%keys), Payload: []byte(`{}`)})
	}
	if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { // one commit, one wake-up
		_, err := b.outbox.EnqueueBatch(ctx, tx, msgs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != keys*perKey {
		t.Fatalf("statuses %v", c)
	}
	mu.Lock()
	for k, seqs := range delivered {
		if fmt.Sprint(seqs) != "[1 2 3 4]" {
			t.Errorf("key %s delivered as %v, want [1 2 3 4]", k, seqs)
		}
	}
	mu.Unlock()
	// The commit wakes up to 5 lanes; the LISTEN connection coming up may
	// wake each of the 32 once more.
	walked, claimed := walks(t, reg, "flaky")-walksBefore, claims(t, reg, "flaky")-claimsBefore
	t.Logf("%d claims, %d of them walks, for %d messages delivered on their third attempt", claimed, walked, keys*perKey)
	if walked > keys+32 {
		t.Fatalf("%d of %d claims walked; want at most %d", walked, claimed, keys+32)
	}
	if claimed < 2*(keys+32) {
		t.Fatalf("only %d claims: the test shows nothing", claimed)
	}
}

// A commit whose wake-up never comes (its Notifier never started) is found
// by the lane's next walk on a sweep: within max(SweepInterval,
// min(WalkPace x the lane's walk, MaxWalkGap)), the bound README gives. Here the lane holds 400
// other keys whose heads retry an hour from now, so a walk takes a few
// milliseconds and its pace, not the 100 ms sweep, sets the bound.
func TestUnannouncedMessageIsFoundByThePacedWalk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var lane int
	if err := b.pool.QueryRow(ctx, `SELECT (hashtext('new-key') & 2147483647) % 32`).Scan(&lane); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `
INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, attempts, next_attempt_at)
SELECT gen_random_uuid(), 'sink', k, 1, '\x00', k, 1, now() + interval '1 hour'
FROM (SELECT 'parked-' || i AS k FROM generate_series(1, 40000) i) s
WHERE (hashtext(k) & 2147483647) % 32 = $1
LIMIT 400`, lane); err != nil {
		t.Fatal(err)
	}
	const sweep = 100 * time.Millisecond
	const pace = 20
	d := b.startWith(t, b.config(t, func(c *worker.Config) { c.SweepInterval = sweep }),
		func(d *worker.Dispatcher) { worker.SetWalkPace(d, pace) })
	waitReady(t, b)
	l := worker.Lane{Destination: "sink", Lane: lane}
	for worker.LastWalk(d, l) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	silent, err := outbox.NewNotifier(b.pool, nil) // never started
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := outbox.New(&outbox.Config{Notifier: silent})
	last := worker.LastWalk(d, l)
	bound := max(sweep, min(pace*last, worker.MaxWalkGap))
	committed := time.Now()
	if _, err := ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "new-key", Payload: []byte(`{"i":1,"key":"new-key"}`)}); err != nil {
		t.Fatal(err)
	}
	// The allowance covers the walk that finds it and the POST: a walk
	// slower than the last one here also moves the bound.
	took := b.waitFirstDelivery(t, committed, bound+time.Second, "the commit, without any notification")
	t.Logf("delivered %s after the commit (last walk %s: bound %s)", took, last, bound)
}
