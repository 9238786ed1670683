package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A lane runner that delivered an unkeyed message claims again only when a
// commit wakes it (or its sweep comes): it used to claim at once after every
// such batch, which found nothing, since whatever was committed meanwhile
// wakes the lane anyway. Each message here is committed after the one
// before is recorded, so it wakes its lane once, and that claim takes it:
// one claim per message, where the old rule made two. Sweeps are an hour
// apart, so each message also proves that its wake-up alone brings it out.
func TestAnUnkeyedDeliveryIsNotFollowedByAnEmptyClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval, c.Metrics = time.Hour, m }))
	waitFirstClaims(t, reg, "sink")
	before := claims(t, reg, "sink")
	const n = 100
	for i := range n {
		b.enqueue(t, 1, 1, func(int) string { return "" })
		if c := b.waitSettled(t, 30*time.Second); c["delivered"] != i+1 {
			t.Fatalf("after message %d: statuses %v", i+1, c)
		}
	}
	// Start-up may add a wake-up of each lane when the LISTEN connection
	// comes up (32); the old rule added n.
	if got := claims(t, reg, "sink") - before; got > n+32 {
		t.Fatalf("%d claims for %d unkeyed messages committed one at a time (at most %d: one each, and start-up's wake-ups)", got, n, n+32)
	} else {
		t.Logf("%d claims for %d messages", got, n)
	}
}

// A retry that falls due while its lane delivers another, unkeyed, message
// has no wake-up coming: the runner claims at once after that batch, as it
// does after a keyed delivery, rather than at its sweep (an hour here).
// R fails, due again 600 ms later; U, committed at once in the same lane,
// takes 900 ms to deliver (under stragglerAfter, 1 s: the runner waits
// for it), so R falls due while U is out.
func TestARetryDueDuringAnotherDeliveryIsClaimedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	rID, uID := idInLane7(t, b), idInLane7(t, b)
	var rTries atomic.Int32
	var rRetriedAt, uStartedAt, uDoneAt atomic.Int64
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.SweepInterval, c.Metrics = time.Hour, m
		c.Retry = worker.RetryPolicy{Base: 600 * time.Millisecond, Max: 600 * time.Millisecond, MaxAttempts: 5}
		c.Destinations = map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(func(ctx context.Context, msg dispatch.Message) dispatch.Result {
			switch msg.ID {
			case rID:
				if rTries.Add(1) == 1 {
					return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
				}
				rRetriedAt.Store(time.Now().UnixNano())
			case uID:
				uStartedAt.Store(time.Now().UnixNano())
				time.Sleep(900 * time.Millisecond)
				uDoneAt.Store(time.Now().UnixNano())
			}
			return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
		})}
	}))
	waitFirstClaims(t, reg, "sink")
	enqueue := func(id uuid.UUID) {
		t.Helper()
		if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{ID: id, Destination: "sink", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(rID)
	waitFor(t, 10*time.Second, "R's failed attempt recorded", func() bool {
		var attempts int
		if err := b.pool.QueryRow(ctx, `SELECT attempts FROM outboxd.outbox_messages WHERE id = $1`, rID).Scan(&attempts); err != nil {
			t.Fatal(err)
		}
		return attempts == 1
	})
	enqueue(uID)
	waitFor(t, 10*time.Second, "U delivered", func() bool { return uDoneAt.Load() != 0 })
	if rRetriedAt.Load() != 0 && rRetriedAt.Load() < uStartedAt.Load() {
		t.Fatal("R was retried before U's delivery began (U's claim came over 600 ms after R's failure): nothing fell due while U was out, the test shows nothing")
	}
	took := waitFor(t, 5*time.Second, "R, due while U was out, retried after U's delivery (sweep: 1 h)", func() bool { return rRetriedAt.Load() != 0 })
	t.Logf("R retried %s after U's delivery ended", took)
}

// A retry that falls due while a claim that began before its time waits
// (here on a lock, in life on a busy server) is not seen by that claim,
// which comes back empty: the runner claims again at once for it rather
// than forget it until its sweep (an hour here). A review found it
// forgotten when a wake-up's claim came just before its time.
func TestARetryDueDuringAnEmptyClaimIsClaimedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	rID := idInLane7(t, b)
	var rTries atomic.Int32
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.SweepInterval, c.LeaseTTL, c.Metrics = time.Hour, 10*time.Second, m
		c.Retry = worker.RetryPolicy{Base: time.Second, Max: time.Second, MaxAttempts: 5}
		c.Destinations = map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(func(context.Context, dispatch.Message) dispatch.Result {
			if rTries.Add(1) == 1 {
				return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
			}
			return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
		})}
	}))
	waitFirstClaims(t, reg, "sink")
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{ID: rID, Destination: "sink", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	dueIn := func() time.Duration {
		var ms float64
		err := b.pool.QueryRow(ctx, `SELECT CASE WHEN attempts = 1 THEN extract(epoch FROM next_attempt_at - now()) * 1000 ELSE 1e9 END
			FROM outboxd.outbox_messages WHERE id = $1`, rID).Scan(&ms)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(ms * float64(time.Millisecond))
	}
	waitFor(t, 10*time.Second, "R's failed attempt recorded", func() bool { return dueIn() < time.Hour })
	lock, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // committed below
	if _, err := lock.Exec(ctx, `LOCK TABLE outboxd.outbox_lanes IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `SELECT pg_notify('outboxd_outbox', '7')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "lane 7's claim waiting on the lock", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%WITH RECURSIVE lease%'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if d := dueIn(); d <= 0 {
		t.Fatalf("R was due (%s) before the claim waited: the test shows nothing (a slow machine?)", -d)
	}
	// The claim's now() is from before R's time; once R is well past it
	// (by the server's clock, which the runner's notes follow), let it go.
	waitFor(t, 5*time.Second, "R due for 300 ms", func() bool { return dueIn() < -300*time.Millisecond })
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 5*time.Second, "R retried after the empty claim (sweep: 1 h)", func() bool { return rTries.Load() >= 2 })
	t.Logf("R retried %s after the lock was let go", took)
}
