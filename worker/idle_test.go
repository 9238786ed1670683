package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// An idle dispatcher's empty lanes park (worker/idle.go): through 20
// rounds of the idle probe, each of the 32 lanes looked at in every one,
// they make no claim, where each lane claimed on every sweep before (640
// claims for 20 sweeps). A commit made without any wake-up just after a
// round, keyed (only a walk finds a new key) and unkeyed, is found by the
// next round: within the sweep README promises, plus what a loaded
// machine adds to the claim and the delivery (300 ms here; rounds a
// sweep late would take 800). Also when the lanes' walks are paced (here
// every walk, as after a lane drained a large backlog: its pace counts
// its last real walks): a review found the keyed commit then waiting for
// the paced walk, 30 s.
func TestIdleLanesParkAndStillFindUnannouncedCommits(t *testing.T) {
	t.Parallel()
	for _, paced := range []bool{false, true} {
		t.Run(fmt.Sprintf("paced %v", paced), func(t *testing.T) {
			t.Parallel()
			idleLanesParkAndStillFindUnannouncedCommits(t, paced)
		})
	}
}

func idleLanesParkAndStillFindUnannouncedCommits(t *testing.T, paced bool) {
	b := setup(t)
	ctx := context.Background()
	ob := unannounced(t)
	reg, m := newMetrics(t)
	const sweep, slack = 400 * time.Millisecond, 300 * time.Millisecond
	d := b.startWith(t, b.config(t, func(c *worker.Config) { c.Metrics = m; c.SweepInterval = sweep }), func(d *worker.Dispatcher) {
		if paced {
			worker.SetWalkPace(d, 1<<30)
		}
	})
	waitReady(t, b)
	// Listening: its connection's wake-up of every lane has come.
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	waitWalksSettled(t, reg, "sink")
	if paced {
		worker.SetLastWalk(d, 10*time.Millisecond)
	}
	claimsBefore, probesBefore := claims(t, reg, "sink"), idleProbes(t, reg, "sink")
	waitFor(t, 30*time.Second, "20 rounds of the idle probe over the 32 lanes", func() bool {
		return idleProbes(t, reg, "sink")-probesBefore >= 20*32
	})
	if n := claims(t, reg, "sink") - claimsBefore; n != 0 {
		t.Fatalf("%d claims by idle lanes through 20 sweeps; want none (their probes found nothing)", n)
	}

	for i, key := range []string{"parked-key", ""} {
		last := idleProbes(t, reg, "sink")
		waitFor(t, 10*time.Second, "a round of the idle probe", func() bool { return idleProbes(t, reg, "sink") != last })
		if _, err := ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, sweep+slack, "the commit, without any notification, to a parked lane", func() bool {
			return len(b.sink.Accepted()) > i
		})
		t.Logf("message with key %q, committed just after a round, delivered %s after its commit without a wake-up (sweep %s)", key, took, sweep)
	}
}

// A retry another holder recorded (here written by hand: an unkeyed
// message failed once, due in 1 s) falls due in a parked lane: the
// probe finds nothing while it is not due (no claim), and the round after
// it falls due finds it.
func TestAParkedLaneFindsARetryWhenItFallsDue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg, m := newMetrics(t)
	const sweep, due = 100 * time.Millisecond, time.Second
	b.start(t, b.config(t, func(c *worker.Config) { c.Metrics = m; c.SweepInterval = sweep }))
	waitReady(t, b)
	waitWalksSettled(t, reg, "sink")
	ob := unannounced(t)
	// Made a retry in the enqueueing transaction: no probe sees it due
	// before its time. The update wakes nobody (the trigger fires for a
	// message due now only).
	var dueAt time.Time
	if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		e, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "sink", Payload: []byte(`{}`)})
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `UPDATE outboxd.outbox_messages
			SET attempts = 1, next_attempt_at = now() + $2::bigint * interval '1 millisecond'
			WHERE id = $1 RETURNING next_attempt_at`, e.ID, due.Milliseconds()).Scan(&dueAt)
	}); err != nil {
		t.Fatal(err)
	}
	claimsBefore := claims(t, reg, "sink")
	waitFor(t, 10*time.Second, "the retry delivered", func() bool { return len(b.sink.Accepted()) == 1 })
	at := b.sink.Accepted()[0].At
	if at.Before(dueAt) {
		t.Fatalf("delivered at %s, before its retry was due (%s)", at, dueAt)
	}
	claimed := claims(t, reg, "sink") - claimsBefore
	t.Logf("delivered %s after it fell due (sweep %s), %d claims", at.Sub(dueAt).Round(time.Millisecond), sweep, claimed)
	if claimed > 4 { // one, and what a stalled test sees after it; 10 blind
		t.Errorf("%d claims for one retry: the lanes claimed while nothing was due (a claim on every sweep, 32 a sweep, or a probe blind to next_attempt_at)", claimed)
	}
	if late := at.Sub(dueAt); late > sweep+time.Second {
		t.Fatalf("delivered %s after it fell due; want within the sweep (%s)", late, sweep)
	}
}

// idleProbes is how many times parked lanes of destination were probed.
func idleProbes(t *testing.T, reg *prometheus.Registry, destination string) uint64 {
	t.Helper()
	return perDestination(t, reg, "outboxd_idle_lane_probes_total", destination)
}

// A lane whose keyed messages wait, none due (a failing destination's
// heads retrying an hour from now), parks after its empty walk, and the
// idle probe finds it busy at every round: it claims, but keeps its
// walk's pace (30 s here) rather than walk its keys every sweep, which
// its walk's pace exists to prevent (worker/walk.go). 10 rounds, each
// claim a retries-only claim: no walk.
func TestALaneWithKeysWaitingKeepsItsPaceWhenParked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	keys := parkDueHeads(t, b, 40)
	var tried atomic.Int64
	reg := startOnParkedHeads(t, b, 100*time.Millisecond, time.Hour, dispatch.DestinationFunc(func(context.Context, dispatch.Message) dispatch.Result {
		tried.Add(1)
		return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
	}))
	waitFor(t, 20*time.Second, "every head tried once", func() bool { return tried.Load() >= int64(len(keys)) })
	waitWalksSettled(t, reg, "sink")
	walksBefore, claimsBefore, probesBefore := walks(t, reg, "sink"), claims(t, reg, "sink"), idleProbes(t, reg, "sink")
	// The 31 empty lanes are looked at in every round.
	waitFor(t, 20*time.Second, "10 rounds of the idle probe", func() bool { return idleProbes(t, reg, "sink")-probesBefore >= 10*31 })
	walked, claimed := walks(t, reg, "sink")-walksBefore, claims(t, reg, "sink")-claimsBefore
	t.Logf("10 rounds: the lane with 40 keys waiting made %d claims, %d walks", claimed, walked)
	if walked > 1 {
		t.Fatalf("%d walks in 10 rounds by a lane whose walks are paced 30 s apart", walked)
	}
	if claimed < 5 {
		t.Fatalf("%d claims in 10 rounds: the test shows nothing", claimed)
	}
}
