package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A destination that is down and keeps receiving commits behind its keys'
// heads does not walk its lane once per commit (worker/walk.go): each walk
// would find nothing new, and behind 100,000 keys each costs tens of
// milliseconds (bench-backlog -down-rate 50: the dispatcher's server CPU
// 3.6x, the healthy destination's p50 68x before). Here 30 commits, each
// woken, to a lane whose 40 heads all failed (over downAfter, 32, in a
// row): at most 2 of the claims they
// cause walk, where each walked before. A requeue still walks at once.
func TestADownDestinationDoesNotWalkPerCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	keys := parkDueHeads(t, b, 40)
	var tried atomic.Int64
	reg := startOnParkedHeads(t, b, 5*time.Second, time.Hour, dispatch.DestinationFunc(func(context.Context, dispatch.Message) dispatch.Result {
		tried.Add(1)
		return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
	}))
	waitFor(t, 20*time.Second, "every head tried once", func() bool { return tried.Load() >= int64(len(keys)) })
	waitWalksSettled(t, reg, "sink")
	walksBefore, claimsBefore := walks(t, reg, "sink"), claims(t, reg, "sink")
	const commits = 30
	for i := range commits { // each behind a head, each its own wake-up (a NOTIFY in the transaction)
		if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: keys[i%len(keys)], Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The wake-ups arrived: the lane claimed for them (the sweep alone,
	// every 5 s, makes about 6 claims a second over 32 lanes).
	waitFor(t, 10*time.Second, "claims for the commits' wake-ups (else the test shows nothing)",
		func() bool { return claims(t, reg, "sink")-claimsBefore >= commits/2 })
	walked, claimed := walks(t, reg, "sink")-walksBefore, claims(t, reg, "sink")-claimsBefore
	t.Logf("%d commits to a down destination: %d claims, %d walks", commits, claimed, walked)
	if walked > 2 {
		t.Fatalf("%d of %d claims walked for %d commits to a down destination; want at most 2", walked, claimed, commits)
	}
	if n := tried.Load(); n != int64(len(keys)) {
		t.Fatalf("%d attempts; want the %d heads' first only (their retries are an hour away, the commits queue behind them)", n, len(keys))
	}

	// An operator's requeue still walks at once (its wake-up, the
	// trigger's, names no destination): the requeued head has not been
	// tried since, so only a walk finds it.
	last := keys[len(keys)-1] // nothing queued behind it
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead' WHERE ordering_key = $1`, last); err != nil {
		t.Fatal(err)
	}
	if n, err := b.outbox.Requeue(ctx, b.pool, outbox.Filter{OrderingKey: last}); err != nil || n != 1 {
		t.Fatalf("requeued %d: %v", n, err)
	}
	took := waitFor(t, 3*time.Second, "a requeued message tried (next paced walk: 30 s)", func() bool { return tried.Load() > int64(len(keys)) })
	t.Logf("requeued message tried %s after the requeue", took)
}

// Once the destination answers again, its lane walks again: for a commit
// whose wake-up it skipped while the destination was down, and on each
// new wake-up. Both messages are delivered at once, not at the next paced
// walk (30 s here).
func TestARecoveredDestinationWalksOnWakeUpsAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	keys := parkDueHeads(t, b, 40)
	var (
		up        atomic.Bool
		failed    atomic.Int64
		delivered atomic.Int64
	)
	reg := startOnParkedHeads(t, b, 100*time.Millisecond, 200*time.Millisecond, dispatch.DestinationFunc(func(context.Context, dispatch.Message) dispatch.Result {
		if !up.Load() {
			failed.Add(1)
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
		}
		delivered.Add(1)
		return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
	}))
	heads := int64(len(keys))
	waitFor(t, 20*time.Second, "two rounds of failed attempts", func() bool { return failed.Load() >= 2*heads })
	waitWalksSettled(t, reg, "sink") // the lane's next sweep walk is 30 s away
	// A new key's message committed while the destination is down: its
	// wake-up does not walk, so it is not tried, but it is not forgotten
	// either.
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: keyInLane7(t, b, "during-"), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	n := failed.Load()
	waitFor(t, 20*time.Second, "another round of failed attempts after the commit", func() bool { return failed.Load() >= n+heads })
	up.Store(true)
	took := waitFor(t, 3*time.Second, "the heads and the message committed during the outage delivered once the destination is up (next paced walk: 30 s)",
		func() bool { return delivered.Load() >= heads+1 })
	t.Logf("the heads and the message committed during the outage delivered %s after the destination came back", took)
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: keyInLane7(t, b, "fresh-"), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, 3*time.Second, "a new key's message delivered by the recovered destination (next paced walk: 30 s)",
		func() bool { return delivered.Load() >= heads+2 })
	t.Logf("a new key's message delivered %s after its commit", took)
}

// A new key committed while the destination is down: its wake-up does not
// walk (paced) and none other comes for it. When the destination is back
// and an unkeyed message is the lane's first delivery, the runner claims
// at once after it and that claim walks, as it would after a keyed one,
// rather than at its sweep (5 s here; the paced walk: 30 s).
func TestACommitWhoseWakeUpDidNotWalkGoesAfterAnUnkeyedDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	keys := parkDueHeads(t, b, 40)
	var up atomic.Bool
	var failed, kAt, uAt atomic.Int64
	kKey, uID := keyInLane7(t, b, "during-"), idInLane7(t, b)
	reg := startOnParkedHeads(t, b, 5*time.Second, time.Hour, dispatch.DestinationFunc(func(_ context.Context, m dispatch.Message) dispatch.Result {
		if !up.Load() {
			failed.Add(1)
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
		}
		switch {
		case m.OrderingKey == kKey:
			kAt.Store(time.Now().UnixNano())
		case m.ID == uID:
			uAt.Store(time.Now().UnixNano())
		}
		return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
	}))
	waitFor(t, 20*time.Second, "every head tried once", func() bool { return failed.Load() >= int64(len(keys)) })
	waitWalksSettled(t, reg, "sink")
	walksBefore, claimsBefore := walks(t, reg, "sink"), claims(t, reg, "sink")
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: kKey, Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a claim for K's wake-up", func() bool { return claims(t, reg, "sink") > claimsBefore })
	if w := walks(t, reg, "sink") - walksBefore; w != 0 || kAt.Load() != 0 {
		t.Fatalf("K's wake-up walked (%d walks) or K was tried: the destination is not paced, the test shows nothing", w)
	}
	up.Store(true)
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{ID: uID, Destination: "sink", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "U delivered", func() bool { return uAt.Load() != 0 })
	took := waitFor(t, 2*time.Second, "K delivered after U (sweep 5 s, paced walk 30 s)", func() bool { return kAt.Load() != 0 })
	t.Logf("K delivered %s after U's delivery was seen", took)
}

// A destination that fails some keys (a tenant, a shard) and delivers
// others is not down: a new key's message goes out at once, however many
// retries fail beside it. Here 40 keys fail every 50 ms or so (hundreds of
// failed attempts between two deliveries) while a message to a new key is
// delivered every 250 ms (the destination counts as down 2 s after its
// last delivery here, not 30 s); after 3 s of that, another new key in the failing keys' lane must go
// out within 3 s, not at the next paced walk (30 s). (Counting failures in
// a row alone, or a lane's last batch, paced it: an operator's trial saw
// healthy keys' p50 go from 6 ms to 1 s behind 30,000 failing ones.)
func TestAPartlyFailingDestinationIsNotPaced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	failing := map[string]bool{}
	for _, k := range parkDueHeads(t, b, 40) {
		failing[k] = true
	}
	var failed, delivered atomic.Int64
	reg := startOnParkedHeads(t, b, 100*time.Millisecond, 50*time.Millisecond, dispatch.DestinationFunc(func(_ context.Context, m dispatch.Message) dispatch.Result {
		if failing[m.OrderingKey] {
			failed.Add(1)
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 500}
		}
		delivered.Add(1)
		return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
	}), func(d *worker.Dispatcher) { worker.SetDownQuiet(d, 2*time.Second) }) // down 2 s after its last delivery
	waitWalksSettled(t, reg, "sink") // the lane's next sweep walk is 30 s away
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // the healthy traffic, until the end
		defer close(stopped)
		for i := 0; ; i++ {
			// Each to a new key (found by a walk, as a new customer's
			// would be), but the first: unkeyed, found without one, its
			// delivery tells the dispatcher the destination answers.
			m := outbox.Message{Destination: "sink", OrderingKey: fmt.Sprintf("ok-%d", i), Payload: []byte(`{}`)}
			if i == 0 {
				m.OrderingKey = ""
			}
			if _, err := b.outbox.Enqueue(ctx, b.pool, m); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-stopped }()
	start := failed.Load()
	waitFor(t, 20*time.Second, "600 failed attempts and 12 deliveries (3 s)", func() bool { return failed.Load()-start >= 600 && delivered.Load() >= 12 })
	before := delivered.Load()
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: keyInLane7(t, b, "fresh-"), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var undelivered int
	took := waitFor(t, 3*time.Second, "a new key's message delivered beside failing keys (next paced walk: 30 s)", func() bool {
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages WHERE status = 'pending' AND ordering_key LIKE 'fresh-%'`).Scan(&undelivered); err != nil {
			t.Fatal(err)
		}
		return undelivered == 0
	})
	t.Logf("%d failed attempts, %d deliveries beside them; the new key's message delivered %s after its commit", failed.Load(), before, took)
}

// keyInLane7 is an ordering key starting with prefix in lane 7, the lane
// of parkDueHeads' keys.
func keyInLane7(t *testing.T, b bundle, prefix string) string {
	t.Helper()
	return keysInLane(t, b, prefix, 7, 1)[0]
}

// parkDueHeads stores n keys of one lane of "sink", each with one message
// that failed an attempt and is due again now, and returns the keys.
func parkDueHeads(t *testing.T, b bundle, n int) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := b.pool.Query(ctx, `
WITH k AS (
    SELECT 'parked-' || i AS k FROM generate_series(1, 100 * $1::int) i
    WHERE (hashtext('parked-' || i) & 2147483647) % 32 = 7
    LIMIT $1
), keys AS (
    INSERT INTO outboxd.outbox_keys (ordering_key, last_seq) SELECT k, 1 FROM k
), msgs AS (
    INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, attempts, next_attempt_at)
    SELECT gen_random_uuid(), 'sink', k, 1, '\x00', k, 1, now() FROM k
)
SELECT k FROM k`, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil || len(keys) != n {
		t.Fatalf("parked %d keys of %d: %v", len(keys), n, err)
	}
	return keys
}

// startOnParkedHeads starts a dispatcher whose only destination "sink" is
// dest, sweeping every sweep and retrying every backoff, with every walk
// paced and a gap of 30 s (once a lane has walked twice: its first claim
// and its first sweep), and waits until it holds every lane; also runs
// before Start.
func startOnParkedHeads(t *testing.T, b bundle, sweep, backoff time.Duration, dest dispatch.Destination, also ...func(*worker.Dispatcher)) *prometheus.Registry {
	t.Helper()
	reg, m := newMetrics(t)
	cfg := b.config(t, func(c *worker.Config) {
		c.Metrics = m
		c.SweepInterval = sweep
		c.Retry = worker.RetryPolicy{Base: backoff, Max: backoff, MaxAttempts: 1000}
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
	})
	b.startWith(t, cfg, func(d *worker.Dispatcher) {
		worker.SetWalkPace(d, 1<<30)
		for _, f := range also {
			f(d)
		}
	})
	waitReady(t, b)
	return reg
}
