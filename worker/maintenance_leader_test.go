package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/worker"
)

type appJobArgs struct{}

func (appJobArgs) Kind() string { return "app_job" }

type appJobWorker struct {
	river.WorkerDefaults[appJobArgs]
}

func (appJobWorker) Work(context.Context, *river.Job[appJobArgs]) error { return nil }

// An application's River client working its own jobs in outboxd's schema
// (as inbox's async mode requires: docs/receiving.md) takes part in River's
// leader election. Holding the leadership, it does not enqueue outboxd's
// periodic jobs: the purge must still run.
func TestPurgeRunsWhileAnApplicationsRiverClientLeads(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	workers := river.NewWorkers()
	river.AddWorker(workers, appJobWorker{})
	app, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Schema: "outboxd", ID: "the-application", Workers: workers,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	deadline := time.Now().Add(30 * time.Second)
	for leader := ""; leader != "the-application"; {
		err := b.pool.QueryRow(ctx, `SELECT leader_id FROM outboxd.river_leader`).Scan(&leader)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the application's River client is not the leader after 30 s (%q is)", leader)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload)
		SELECT 'old', 'e' || g, now() - interval '1 hour', '' FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, func(c *worker.Config) { c.Maintenance.Interval = 200 * time.Millisecond }))
	deadline = time.Now().Add(30 * time.Second)
	for {
		var n int
		var leader string
		if err := b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outboxd.inbox_events), (SELECT leader_id FROM outboxd.river_leader)`).Scan(&n, &leader); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			if leader != "the-application" {
				t.Fatalf("purged, but the leader changed to %q: the test proves nothing", leader)
			}
			return
		}
		if time.Now().After(deadline) {
			rows, _ := b.pool.Query(ctx, `SELECT kind, state::text, queue, scheduled_at::text, coalesce(errors::text,'') FROM outboxd.river_job`)
			for rows.Next() {
				var k, st, q, sa, e string
				_ = rows.Scan(&k, &st, &q, &sa, &e)
				t.Log(k, st, q, sa, e)
			}
			t.Fatalf("%d expired keys left after 30 s while the application's River client leads", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Every dispatcher queues the purge's job, but one run per interval is
// queued in all: the job is unique within its period.
func TestOnePurgeRunPerIntervalWhateverTheDispatchers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	began := time.Now()
	for range 3 {
		b.start(t, b.config(t, func(c *worker.Config) { c.Maintenance.Interval = time.Second }))
	}
	time.Sleep(3500 * time.Millisecond) // a few intervals, to count the runs queued in them
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.river_job WHERE kind = 'outboxd_maintenance'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	// Periods are whole seconds of the clock: the ones this test's time
	// touched, at most.
	periods := int(time.Now().Unix()-began.Unix()) + 1
	if n < 2 || n > periods {
		t.Fatalf("%d purge runs queued by 3 dispatchers over %d one-second periods; want at least 2 and at most one per period", n, periods)
	}
	// Tried twice more after a failure (docs/operations.md), not River's 25.
	var attempts []int
	rows, err := b.pool.Query(ctx, `SELECT DISTINCT max_attempts FROM outboxd.river_job WHERE kind = 'outboxd_maintenance'`)
	if err != nil {
		t.Fatal(err)
	}
	if attempts, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil || len(attempts) != 1 || attempts[0] != 3 {
		t.Fatalf("purge runs' max_attempts %v (%v); want 3", attempts, err)
	}
}

// Purge runs are queued at the clock's multiples of the interval, not an
// interval after each start: a dispatcher (re)started late in a period
// that already had its run still queues the next at the period's end, not
// almost two intervals after the last run.
func TestPurgeRunsAtTheClocksPeriods(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const period = 2 * time.Second
	// Start 1.3 s into a period: a ticker from the start would queue at
	// 1.3 s into each period.
	now := time.Now()
	time.Sleep(now.Truncate(period).Add(period + 1300*time.Millisecond).Sub(now))
	b.start(t, b.config(t, func(c *worker.Config) { c.Maintenance.Interval = period }))
	deadline := time.Now().Add(30 * time.Second)
	var at []time.Time
	for len(at) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d purge runs queued in 30 s", len(at))
		}
		time.Sleep(100 * time.Millisecond)
		rows, err := b.pool.Query(ctx, `SELECT created_at FROM outboxd.river_job WHERE kind = 'outboxd_maintenance' ORDER BY created_at`)
		if err != nil {
			t.Fatal(err)
		}
		if at, err = pgx.CollectRows(rows, pgx.RowTo[time.Time]); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range at[1:] { // the first is the start's
		if into := a.Sub(a.Truncate(period)); into > period/2 {
			t.Errorf("a run queued %s into its period (at %s), want at its start: %v", into, a.Format(time.StampMilli), at)
		}
	}
}

// Dispatchers configured with different intervals (one process before a
// change of maintenance.interval, one after) each get their runs: a
// shorter interval's run starting at the same time does not take a longer
// one's period.
func TestPurgeRunsOfEachInterval(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	runs := func(every string, from, to time.Time) (n int) {
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.river_job WHERE kind = 'outboxd_maintenance'
			AND args->>'every' = $1 AND created_at >= $2 AND created_at < $3`, every, from, to).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	b.start(t, b.config(t, func(c *worker.Config) { c.Maintenance.Interval = time.Second }))
	// Early in a two-second period whose first second's run the 1 s
	// dispatcher has queued...
	deadline := time.Now().Add(30 * time.Second)
	var period time.Time
	for {
		now := time.Now()
		period = now.Truncate(2 * time.Second)
		if now.Sub(period) < 800*time.Millisecond && runs("1s", period, period.Add(time.Second)) == 1 {
			break
		}
		if now.After(deadline) {
			t.Fatal("no 1 s run at the start of a two-second period in 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ...a 2 s dispatcher starts: its start's run has the same period start.
	b.start(t, b.config(t, func(c *worker.Config) { c.Maintenance.Interval = 2 * time.Second }))
	for time.Now().Before(period.Add(2 * time.Second)) {
		if runs("2s", period, period.Add(2*time.Second)) == 1 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the 2 s dispatcher's run of the period from %s was not queued (taken by the 1 s one's)", period.Format(time.StampMilli))
}
