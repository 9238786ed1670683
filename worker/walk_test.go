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
// each, while the only claims that walk after start-up are those of the
// commit's wake-ups. (Before walk.go every claim walked.) Each message is
// a retry head when it is delivered, taken alone, so each next message is
// found as the next of a key just delivered (claimRetriesSQL's $8), with
// one message of a key per claim and with ten.
func TestSweepsFindRetriesWithoutWalking(t *testing.T) {
	t.Parallel()
	for _, perKey := range []int{1, 10} {
		t.Run(fmt.Sprintf("per_key_batch %d", perKey), func(t *testing.T) {
			t.Parallel()
			sweepsFindRetriesWithoutWalking(t, perKey)
		})
	}
}

func sweepsFindRetriesWithoutWalking(t *testing.T, perKeyBatch int) {
	b := setup(t)
	ctx := context.Background()
	reg, m := newMetrics(t)
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
		c.PerKeyBatch = perKeyBatch
		// No idle probe round between the commit and its wake-ups: one
		// that finds a parked lane busy first makes it walk, and the
		// wake-up, come a moment later, walks it again (docs/design.md,
		// "Idle lanes park"). The retries are claimed on the runners'
		// own timers.
		c.SweepInterval = time.Hour
	})
	b.startWith(t, cfg, func(d *worker.Dispatcher) { worker.SetWalkPace(d, 1<<30) })
	waitReady(t, b)
	waitWalksSettled(t, reg, "flaky")
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
	// The commit wakes up to 5 lanes, each of which walks once.
	walked, claimed := walks(t, reg, "flaky")-walksBefore, claims(t, reg, "flaky")-claimsBefore
	t.Logf("%d claims, %d of them walks, for %d messages delivered on their third attempt", claimed, walked, keys*perKey)
	if walked > keys {
		t.Fatalf("%d of %d claims walked; want at most %d", walked, claimed, keys)
	}
	if claimed < 10*keys {
		t.Fatalf("only %d claims: the test shows nothing", claimed)
	}
}

// waitWalksSettled waits until the 32 lanes of destination are past the
// walks of their start, after which a paced walk is a gap away: every lane
// walks on its first claim, and the LISTEN connection coming up may wake
// each once more; an empty lane then parks (idle.go), and one with
// messages walks on its first sweep (what a walk takes is the shorter of
// its last two: none before the second). It waits until no lane has
// walked for 500 ms.
func waitWalksSettled(t *testing.T, reg *prometheus.Registry, destination string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for last, since := walks(t, reg, destination), time.Now(); last < 32 || time.Since(since) < 500*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("lanes still walking on their sweeps after 20 s (%d walks)", last)
		}
		time.Sleep(10 * time.Millisecond)
		if n := walks(t, reg, destination); n != last {
			last, since = n, time.Now()
		}
	}
}

// A commit whose wake-up never comes (its Notifier cannot reach the
// database) is found
// by the lane's next walk on a sweep: within max(SweepInterval,
// min(pace x the lane's walk, 30 s)) for a walk of 5 ms or more, twice
// that if it waits for its turn, the bound README gives (the pace is 320:
// 100 here for a shorter test, and every walk paced; TestWalkGap checks
// the numbers). The lane holds 400 other keys whose heads retry an hour
// from now, so its pace, not the 100 ms sweep, sets the bound.
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
	const pace = 100
	d := b.startWith(t, b.config(t, func(c *worker.Config) { c.SweepInterval = sweep }),
		func(d *worker.Dispatcher) { worker.SetWalkPace(d, pace) })
	waitReady(t, b)
	l := worker.Lane{Destination: "sink", Lane: lane}
	for deadline := time.Now().Add(20 * time.Second); worker.LastWalk(d, l) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the lane has not walked twice in 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ob := unannounced(t)
	last := worker.LastWalk(d, l)
	// Twice the gap: a lane may wait up to a gap more for its turn.
	bound := 2 * worker.WalkGap(sweep, pace, 0, last)
	committed := time.Now()
	if _, err := ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "new-key", Payload: []byte(`{"i":1,"key":"new-key"}`)}); err != nil {
		t.Fatal(err)
	}
	// The allowance covers the walk that finds it and the POST: a walk
	// slower than the last one here also moves the bound.
	took := b.waitFirstDelivery(t, committed, bound+time.Second, "the commit, without any notification")
	t.Logf("delivered %s after the commit (walk %s, pace %d, sweep %s: bound %s)", took, last, pace, sweep, bound)
}

// The lanes of a destination take turns for their sweep walks: lanes
// that started together would otherwise walk together at every gap, every
// core at once for a moment. Here each of the 32 lanes holds 750 keys
// whose heads retry an hour from now and walks every 200 walks (a gap of
// over 6 times what 32 walks in turn take: a lane that waited a whole gap
// more would walk without its turn); the walks running at once are read
// from pg_stat_activity.
func TestSweepWalksTakeTurns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `
INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, attempts, next_attempt_at)
SELECT gen_random_uuid(), 'sink', 'parked-' || i, 1, '\x00', 'parked-' || i, 1, now() + interval '1 hour'
FROM generate_series(1, 24000) i`); err != nil {
		t.Fatal(err)
	}
	reg, m := newMetrics(t)
	b.startWith(t, b.config(t, func(c *worker.Config) { c.Metrics = m }), func(d *worker.Dispatcher) { worker.SetWalkPace(d, 200) })
	// Past the first claims (and the LISTEN connection's wake-ups), which
	// all walk at once: 32 of them, then sweep walks (the second of each
	// lane comes a sweep after its first). Not a bound of the walks: a CI
	// run beside other packages' tests and a trial's servers made 71 in
	// 20 s.
	for deadline := time.Now().Add(60 * time.Second); walks(t, reg, "sink") < 72; {
		if time.Now().After(deadline) {
			t.Fatalf("%d walks in 60 s", walks(t, reg, "sink"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	most, seen := 0, 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
  AND query LIKE '%heads AS (%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
		if n > 0 {
			seen++
		}
	}
	t.Logf("at most %d walks at once, seen in %d samples", most, seen)
	if seen == 0 {
		t.Fatal("no walk seen: the test shows nothing")
	}
	if most > 1 {
		t.Fatalf("%d lanes of one destination walked at once on their sweeps", most)
	}
}
