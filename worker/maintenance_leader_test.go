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
}
