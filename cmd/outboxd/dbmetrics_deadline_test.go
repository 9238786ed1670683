package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// The scrape's deadline falling while the last purge's read waits (the
// destinations' read took most of the 2 s): pgx cancels the statement and
// the connection, and the transaction fails; the destinations' gauges,
// read by then, still count, and only the purge's is left out. Before,
// the whole scrape's database gauges were lost (a review's). The deadline
// is a context cancelled once the purge's read is seen waiting on its lock.
func TestThePurgeReadCutByTheDeadlineCostsOnlyItsGauge(t *testing.T) {
	t.Parallel()
	b := oneCRMMessage(t)
	ctx := context.Background()
	waiting := func(what, query string) {
		waitUntil(t, 20*time.Second, what, func() bool {
			var n int
			err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'outboxd-deadline' AND wait_event_type = 'Lock' AND query LIKE $1`, query).Scan(&n)
			return err == nil && n == 1
		})
	}
	unlockMessages := lockTable(t, b, "outboxd.outbox_messages")
	lockTable(t, b, "outboxd.river_job")
	c := newDBCollector(pgtest.Connect(t, b.url+"&application_name=outboxd-deadline"), "outboxd", nil, time.Minute,
		newRateLog(slog.New(slog.DiscardHandler), scrapeLogEvery))
	// The purge's read waits on the lock until the deadline, not its own
	// 200 ms: the deadline is what this test is about.
	c.purgeWait = time.Minute
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type collected struct {
		out           map[string]destStats
		purgeErr, err error
	}
	done := make(chan collected, 1)
	go func() {
		out, _, purgeErr, err := c.collect(cctx)
		done <- collected{out, purgeErr, err}
	}()
	waiting("the destinations' read waiting on outbox_messages", "%outbox_messages%")
	unlockMessages()
	waiting("the last purge's read waiting on river_job", "%river_job%")
	cancel()
	got := <-done
	if got.err != nil || got.out["crm"].pending != 1 {
		t.Fatalf("the destinations' gauges lost with the purge's read: %v, %+v", got.err, got.out)
	}
	if got.purgeErr == nil {
		t.Fatal("the purge's read cut by the deadline reported no error")
	}
}

// The same through a scrape: the last purge's read, waiting on a lock
// (its own 200 ms lifted), gives up purgeSlack before the scrape's budget
// ends, so the scrape answers with the destinations' gauges and
// outboxd_database_up 1. Before, the collection ended with the scrape's
// timer, which answered first: up 0 and the last values (a review's).
func TestAScrapeWhosePurgeReadWaitsToTheDeadlineAnswersUp(t *testing.T) {
	t.Parallel()
	b := oneCRMMessage(t)
	lockTable(t, b, "outboxd.river_job")
	c := newDBCollector(pgtest.Connect(t, b.url), "outboxd", nil, time.Second,
		newRateLog(slog.New(slog.DiscardHandler), scrapeLogEvery))
	c.purgeWait = time.Minute
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if g := gauges(t, reg); g["outboxd_database_up"] != 1 || g["outboxd_pending_messages{crm}"] != 1 {
		t.Fatalf("a scrape whose purge read waited to its deadline: %v", g)
	}
}

// oneCRMMessage is a serve bundle with one message pending for "crm".
func oneCRMMessage(t *testing.T) serveBundle {
	t.Helper()
	b := newServeBundle(t)
	if _, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	return b
}

// lockTable holds an ACCESS EXCLUSIVE lock on table until the returned
// function or the test's end.
func lockTable(t *testing.T, b serveBundle, table string) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	return func() { _ = tx.Rollback(ctx) }
}
