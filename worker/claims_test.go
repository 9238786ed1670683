package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A batch whose every attempt failed, and that took all that was due, is
// not followed at once by another claim of its lane (which would walk the
// lane's keys to find nothing new: a failing destination with many keys
// paid that walk twice per sweep); the next claim waits for the sweep or a
// wake-up. Here each of 100 messages, committed one after the other, is
// claimed once: the claim that fails it, and nothing more until the next
// commit wakes the lane (sweeps are an hour apart, retries too).
func TestAFailedBatchWaitsForItsSweep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.SweepInterval, c.Metrics = time.Hour, m
		c.Retry = worker.RetryPolicy{Base: time.Hour, Max: time.Hour, MaxAttempts: 5}
		c.Destinations = map[string]dispatch.Destination{"down": dispatch.DestinationFunc(unavailable)}
	}))
	waitFirstClaims(t, reg, "down")
	before := claims(t, reg, "down")
	const n = 100
	for i := range n {
		e, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "down", Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			var attempts int
			if err := b.pool.QueryRow(ctx, `SELECT attempts FROM outboxd.outbox_messages WHERE id = $1`, e.ID).Scan(&attempts); err != nil {
				t.Fatal(err)
			}
			if attempts == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %d not attempted", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Start-up may add one wake-up of each lane (the LISTEN connection
	// coming up): at most 32 claims.
	if got := claims(t, reg, "down") - before; got > n+32 {
		t.Fatalf("%d claims for %d failed messages, each committed after the last was attempted; want at most %d", got, n, n+32)
	} else {
		t.Logf("%d claims for %d failed messages", got, n)
	}
}

// A retry is tried when it falls due, even when a wake-up made the lane
// claim before that and find nothing (the idle after an empty claim
// lasted a whole sweep, 5 s here: the retry waited for it). Here the
// first attempt of a message commits another message in its lane; that
// one is delivered at once, the lane's next claim comes before the
// first's retry (200 ms at most) is due, and the retry must still come
// within a second.
func TestARetryIsTriedWhenDueAfterAnEmptyClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, other := keyInLane7(t, b, "first-"), keyInLane7(t, b, "other-")
	var (
		tries    atomic.Int64
		failedAt atomic.Int64
		retryAt  atomic.Int64
	)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.SweepInterval = 5 * time.Second
		c.Retry = worker.RetryPolicy{Base: 200 * time.Millisecond, Max: 200 * time.Millisecond, MaxAttempts: 5}
		c.Destinations = map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(func(ctx context.Context, m dispatch.Message) dispatch.Result {
			if m.OrderingKey != first {
				return dispatch.Result{Outcome: dispatch.Delivered}
			}
			if tries.Add(1) > 1 {
				retryAt.CompareAndSwap(0, time.Now().UnixNano())
				return dispatch.Result{Outcome: dispatch.Delivered}
			}
			// A commit to the same lane while this batch is out: its
			// wake-up ends the wait for this message's retry at once.
			if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: other, Payload: []byte(`{}`)}); err != nil {
				t.Error(err)
			}
			failedAt.Store(time.Now().UnixNano())
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
		})}
	}))
	waitReady(t, b)
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: first, Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the retry", func() bool { return retryAt.Load() != 0 })
	after := time.Duration(retryAt.Load() - failedAt.Load())
	t.Logf("retried %s after the failed attempt (backoff at most 200 ms, sweep 5 s)", after.Round(time.Millisecond))
	if after > time.Second {
		t.Fatalf("retried %s after the failed attempt; its backoff was at most 200 ms", after)
	}
	if c := b.waitSettled(t, 10*time.Second); c["delivered"] != 2 {
		t.Fatalf("statuses %v", c)
	}
}

// Every retry a lane recorded is tried when it falls due, not only the
// soonest: here one batch fails two messages of one lane, one retrying
// after about 100 ms, the other after 1 s (its Retry-After). The first is
// then delivered, the claim after it finds nothing due, and the second
// must still be tried within 2 s of its failure, not at the next sweep
// (5 s).
func TestEachRetryIsTriedWhenDue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	soon, later := keyInLane7(t, b, "soon-"), keyInLane7(t, b, "later-")
	var failedAt, retriedAt atomic.Int64
	var tries sync.Map
	b.start(t, b.config(t, func(c *worker.Config) {
		c.SweepInterval = 5 * time.Second
		c.Retry = worker.RetryPolicy{Base: 100 * time.Millisecond, Max: 10 * time.Second, MaxAttempts: 5}
		c.Destinations = map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(func(_ context.Context, m dispatch.Message) dispatch.Result {
			if _, again := tries.LoadOrStore(m.ID, true); again {
				if m.OrderingKey == later {
					retriedAt.CompareAndSwap(0, time.Now().UnixNano())
				}
				return dispatch.Result{Outcome: dispatch.Delivered}
			}
			if m.OrderingKey == later {
				failedAt.Store(time.Now().UnixNano())
				return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503, RetryAfter: time.Second}
			}
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
		})}
	}))
	waitReady(t, b)
	if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { // one commit: one batch
		_, err := b.outbox.EnqueueBatch(ctx, tx, []outbox.Message{
			{Destination: "sink", OrderingKey: soon, Payload: []byte(`{}`)},
			{Destination: "sink", OrderingKey: later, Payload: []byte(`{}`)},
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the later retry", func() bool { return retriedAt.Load() != 0 })
	after := time.Duration(retriedAt.Load() - failedAt.Load())
	t.Logf("the 1 s retry tried %s after its failure (sweep 5 s)", after.Round(time.Millisecond))
	if after > 2*time.Second {
		t.Fatalf("the 1 s retry tried %s after its failure, at the sweep", after)
	}
}

// What may have left more due is claimed again at once, not at the next
// sweep (an hour away here): a full batch of failures (more keys were due
// than it took), and a batch that delivered (the next messages of its keys
// are due now).
func TestABatchThatMayLeaveMoreIsFollowedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("full of failures", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// 50 keys in one lane, each with one message, for a destination that
		// fails them all: 10 full batches of 5.
		for _, k := range keysInOneLane(t, b, 50) {
			if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "down", OrderingKey: k, Payload: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		b.start(t, b.config(t, func(c *worker.Config) {
			c.SweepInterval, c.BatchSize = time.Hour, 5
			c.Retry = worker.RetryPolicy{Base: time.Hour, Max: time.Hour, MaxAttempts: 5}
			c.Destinations = map[string]dispatch.Destination{"down": dispatch.DestinationFunc(unavailable)}
		}))
		waitAttempted(t, b, 50, 20*time.Second)
	})
	t.Run("delivered", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// One key's 100 messages, 10 per claim.
		b.enqueue(t, 100, 100, func(int) string { return "deal-1" })
		b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval, c.PerKeyBatch = time.Hour, 10 }))
		waitAttempted(t, b, 100, 20*time.Second)
	})
	// Messages of 300 kB, 12 keyed and 12 unkeyed: each claim stops at
	// BatchBytes (1 MiB: four of each), and the next follows at once, not
	// a sweep (an hour) later. Each arrives once, a key's in order.
	t.Run("cut at BatchBytes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		big := `{"pad":"` + strings.Repeat("x", 300_000) + `"}`
		keys := keysInOneLane(t, b, 3) // lane 7
		var msgs []outbox.Message
		for i := range 24 {
			m := outbox.Message{Destination: "sink", Payload: []byte(big)}
			if i%2 == 0 {
				m.OrderingKey = keys[i%3]
			} else {
				m.ID = idInLane7(t, b)
			}
			msgs = append(msgs, m)
		}
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.outbox.EnqueueBatch(ctx, tx, msgs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			seen = map[uuid.UUID]int{}
			last = map[string]int64{}
		)
		dest := dispatch.DestinationFunc(func(_ context.Context, m dispatch.Message) dispatch.Result {
			mu.Lock()
			defer mu.Unlock()
			if seen[m.ID]++; m.OrderingKey != "" {
				if m.Seq <= last[m.OrderingKey] {
					t.Errorf("key %s: seq %d after %d", m.OrderingKey, m.Seq, last[m.OrderingKey])
				}
				last[m.OrderingKey] = m.Seq
			}
			return dispatch.Result{Outcome: dispatch.Delivered}
		})
		b.start(t, b.config(t, func(c *worker.Config) {
			c.SweepInterval = time.Hour
			c.Destinations = map[string]dispatch.Destination{"sink": dest}
		}))
		if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 24 {
			t.Fatalf("statuses %v", c)
		}
		mu.Lock()
		defer mu.Unlock()
		for id, n := range seen {
			if n != 1 {
				t.Errorf("message %s sent %d times", id, n)
			}
		}
	})
	// The destination answered Retry, yet the policy dead-lettered the
	// message (its last attempt): the key's next message is due at once.
	t.Run("dead-lettered by the retry policy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.enqueue(t, 2, 2, func(int) string { return "deal-1" })
		first := &failingFirst{n: 1, fail: func() dispatch.Result { return unavailable(ctx, dispatch.Message{}) }}
		b.start(t, b.config(t, func(c *worker.Config) {
			c.SweepInterval = time.Hour
			c.Retry = worker.RetryPolicy{Base: time.Hour, Max: time.Hour, MaxAttempts: 1}
			c.Destinations = map[string]dispatch.Destination{"sink": first}
		}))
		waitAttempted(t, b, 2, 20*time.Second)
	})
	// A retry whose backoff is shorter than the sweep is claimed when it
	// is due, not at the sweep.
	t.Run("a backoff shorter than the sweep", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.enqueue(t, 1, 1, func(int) string { return "" })
		first := &failingFirst{n: 1, fail: func() dispatch.Result { return unavailable(ctx, dispatch.Message{}) }}
		b.start(t, b.config(t, func(c *worker.Config) {
			c.SweepInterval = time.Hour
			c.Retry = worker.RetryPolicy{Base: 20 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 5}
			c.Destinations = map[string]dispatch.Destination{"sink": first}
		}))
		if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 1 {
			t.Fatalf("statuses %v", c)
		}
	})
	// A retry that fell due while a slow batch was out is claimed when the
	// batch is recorded, not a sweep later: the sweep counts from the claim.
	t.Run("a retry due while the batch was out", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		keys := keysInOneLane(t, b, 2)
		var slow, retry outbox.Enqueued
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			if slow, err = b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "sink", OrderingKey: keys[0], Payload: []byte(`{}`)}); err != nil {
				return err
			}
			retry, err = b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "sink", OrderingKey: keys[1], Payload: []byte(`{}`)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// As if a failed attempt had set it due in a second.
		if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET next_attempt_at = now() + interval '1 second' WHERE id = $1`, retry.ID); err != nil {
			t.Fatal(err)
		}
		var slowDone, retryAt atomic.Int64
		dest := dispatch.DestinationFunc(func(ctx context.Context, m dispatch.Message) dispatch.Result {
			if m.ID == slow.ID {
				select { // 3 s, past the retry's due time and the 2 s sweep
				case <-time.After(3 * time.Second):
				case <-ctx.Done():
				}
				slowDone.Store(time.Now().UnixNano())
				return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 504}
			}
			retryAt.CompareAndSwap(0, time.Now().UnixNano())
			return dispatch.Result{Outcome: dispatch.Delivered}
		})
		b.start(t, b.config(t, func(c *worker.Config) {
			c.SweepInterval = 2 * time.Second
			c.Retry = worker.RetryPolicy{Base: time.Hour, Max: time.Hour, MaxAttempts: 5}
			c.Destinations = map[string]dispatch.Destination{"sink": dest}
		}))
		waitAttempted(t, b, 2, 20*time.Second)
		if after := time.Duration(retryAt.Load() - slowDone.Load()); after > time.Second {
			t.Fatalf("the retry was attempted %s after the slow batch ended (sweep 2 s); want at once", after)
		}
	})
}

// A lane of 80 keys whose messages each fill BatchBytes drains one
// message per claim, and walks the lane's keys only on its first claim:
// the keys a claim's byte bound left out come back to the next by name.
// (A cut counted as a full walk, so every claim walked, one probe per key
// each: a backlog of N keys cost N² probes.) Every lane walks on its first
// claim, and again if the listener connects after it (a reconnect walks):
// at most 64 walks, where walking on every cut would add 80.
func TestACutClaimDoesNotWalkAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	big := `{"pad":"` + strings.Repeat("x", 120_000) + `"}`
	var msgs []outbox.Message
	for _, k := range keysInOneLane(t, b, 80) {
		msgs = append(msgs, outbox.Message{Destination: "sink", OrderingKey: k, Payload: []byte(big)})
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.outbox.EnqueueBatch(ctx, tx, msgs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	reg, metrics := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.SweepInterval, c.BatchBytes, c.Metrics = time.Hour, 100_000, metrics
	}))
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != 80 {
		t.Fatalf("statuses %v", c)
	}
	if n := walks(t, reg, "sink"); n > 64 {
		t.Fatalf("%d claims walked, want at most 64 (each lane's first, and one after the listener connects); claims in all: %d", n, claims(t, reg, "sink"))
	}
}

// idInLane7 returns a new message id whose unkeyed message falls in
// lane 7, with keysInOneLane's keys.
func idInLane7(t *testing.T, b bundle) uuid.UUID {
	t.Helper()
	for {
		id := uuid.Must(uuid.NewV7())
		var lane int
		if err := b.pool.QueryRow(context.Background(), `SELECT (hashtext($1::text) & 2147483647) % 32`, id).Scan(&lane); err != nil {
			t.Fatal(err)
		}
		if lane == 7 {
			return id
		}
	}
}

// unavailable answers as a destination that is down: 503, retry.
func unavailable(context.Context, dispatch.Message) dispatch.Result {
	return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
}

// waitAttempted waits until n messages have had an attempt.
func waitAttempted(t *testing.T, b bundle, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got int
		if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_messages WHERE attempts > 0`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages attempted after %s", got, n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newMetrics is a dispatcher's metrics on a registry of their own.
func newMetrics(t *testing.T) (*prometheus.Registry, *worker.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := worker.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}

// checkAttempts compares outboxd_delivery_attempts_total of destination
// "sink" with want, by outcome (those left out: 0).
func checkAttempts(t *testing.T, reg *prometheus.Registry, want map[string]int) {
	t.Helper()
	text := "# HELP outboxd_delivery_attempts_total Delivery attempts by destination and outcome (delivered, retry, dead, pause, abandoned).\n" +
		"# TYPE outboxd_delivery_attempts_total counter\n"
	for _, o := range []string{"abandoned", "dead", "delivered", "pause", "retry"} {
		text += fmt.Sprintf("outboxd_delivery_attempts_total{destination=\"sink\",outcome=%q} %d\n", o, want[o])
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(text), "outboxd_delivery_attempts_total"); err != nil {
		t.Error(err)
	}
}

// claims is how many claims the dispatcher made for destination.
func claims(t *testing.T, reg *prometheus.Registry, destination string) uint64 {
	t.Helper()
	return perDestination(t, reg, "outboxd_claim_duration_seconds", destination)
}

// walks is how many of those claims walked their lane's keys.
func walks(t *testing.T, reg *prometheus.Registry, destination string) uint64 {
	t.Helper()
	return perDestination(t, reg, "outboxd_claim_walks_total", destination)
}

// perDestination reads a counter, or a histogram's count, of destination.
func perDestination(t *testing.T, reg *prometheus.Registry, name, destination string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "destination" && l.GetValue() == destination {
					if h := s.GetHistogram(); h != nil {
						return h.GetSampleCount()
					}
					return uint64(s.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}
