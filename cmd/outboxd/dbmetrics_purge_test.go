package main

import (
	"context"
	"crypto/rand"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pendingsql"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/outbox"
)

// riverJobs inserts n River jobs of kind in state, finalized at
// finalized (SQL; NULL for a job not finalized).
func riverJobs(t *testing.T, b serveBundle, n int, kind, state, finalized string) {
	t.Helper()
	load(t, b, `INSERT INTO outboxd.river_job (kind, args, state, finalized_at, queue, max_attempts, priority, attempt, attempted_at)
		SELECT '`+kind+`', '{}', '`+state+`', `+finalized+`, 'outboxd', 25, 1, 1, now() FROM generate_series(1, `+strconv.Itoa(n)+`)`)
}

// outboxd_maintenance_last_success_timestamp_seconds is the time of the
// newest completed purge run in River's job table, whichever process ran
// it: not a failed run, nor another kind of job; 0 when none is kept. It
// reads only the purge's own jobs, through their kind's index, however
// many completed jobs of an application's share the table (never analyzed).
func TestLastPurgeGaugeReadsTheNewestCompletedRun(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	reg := prometheus.NewRegistry()
	c := newDBCollector(b.pool, "outboxd", nil, metricsDBTimeout, testRateLog(t))
	reg.MustRegister(c)
	if g := gauges(t, reg); g["outboxd_maintenance_last_success_timestamp_seconds"] != 0 {
		t.Fatalf("no purge ever ran, gauge %v; want 0", g["outboxd_maintenance_last_success_timestamp_seconds"])
	}

	riverJobs(t, b, 20_000, "inbox_process", "completed", "now() - interval '1 second'")
	riverJobs(t, b, 1, "outboxd_maintenance", "completed", "now() - interval '2 hours'")
	riverJobs(t, b, 1, "outboxd_maintenance", "completed", "now() - interval '5 minutes'")
	riverJobs(t, b, 1, "outboxd_maintenance", "retryable", "NULL")
	riverJobs(t, b, 1, "outboxd_maintenance", "discarded", "now() - interval '1 minute'")
	want := float64(time.Now().Add(-5 * time.Minute).Unix())
	if got := gauges(t, reg)["outboxd_maintenance_last_success_timestamp_seconds"]; math.Abs(got-want) > 30 {
		t.Fatalf("gauge %v; want the run completed 5 minutes ago, about %v", got, want)
	}

	var raw []byte
	if err := pendingsql.InTx(context.Background(), b.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "EXPLAIN (ANALYZE, FORMAT JSON) "+c.purgeQuery).Scan(&raw)
	}); err != nil {
		t.Fatal(err)
	}
	plan, err := pgtest.ParsePlan(raw)
	if err != nil {
		t.Fatal(err)
	}
	var rows float64
	plan.Walk(func(n pgtest.Plan) {
		if n.Relation == "river_job" || n.Index != "" {
			if n.Index != "" && n.Index != "river_job_kind" || n.NodeType == "Seq Scan" {
				t.Errorf("the last purge's read uses %s %s %s; want river_job_kind only", n.NodeType, n.Relation, n.Index)
			}
			rows = max(rows, n.RowsRead())
		}
	})
	if rows > 10 {
		t.Errorf("the last purge's read produced %v rows at a node; want the 4 purge jobs, not the application's 20,000", rows)
	}
}

// The last purge's read failing (River's table refused to the role) costs
// the other gauges nothing: they are read, outboxd_database_up stays 1,
// the purge's gauge keeps its value, and the log says why (a review's: the
// whole collection failed, reported as the database not answering).
func TestLastPurgeReadFailingKeepsTheOtherGauges(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	role := "outboxd_noriver_" + strings.ToLower(rand.Text()[:8])
	roleURL := loginRole(t, b.url, role)
	load(t, b, "GRANT USAGE ON SCHEMA outboxd TO "+role, "GRANT SELECT ON ALL TABLES IN SCHEMA outboxd TO "+role,
		"REVOKE SELECT ON outboxd.river_job FROM "+role)
	if _, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDBCollector(pgtest.Connect(t, roleURL), "outboxd", nil, metricsDBTimeout,
		newRateLog(slog.New(slog.NewTextHandler(&logs, nil)), scrapeLogEvery)))
	g := gauges(t, reg)
	if g["outboxd_database_up"] != 1 || g["outboxd_pending_messages{crm}"] != 1 || g["outboxd_maintenance_last_success_timestamp_seconds"] != 0 {
		t.Fatalf("with river_job refused: %v", g)
	}
	if !strings.Contains(logs.String(), "the last purge's time could not be read") || !strings.Contains(logs.String(), "river_job") {
		t.Fatalf("nothing said why:\n%s", logs.String())
	}
}

// River's table locked (a REINDEX, a VACUUM FULL by hand): the last
// purge's read gives up within lastPurgeWait on the server, alone, and the
// scrape answers with the other gauges.
func TestLastPurgeReadBehindALock(t *testing.T) {
	t.Parallel()
	b := oneCRMMessage(t)
	lockTable(t, b, "outboxd.river_job")
	var logs syncbuf.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDBCollector(pgtest.Connect(t, b.url), "outboxd", nil, metricsDBTimeout,
		newRateLog(slog.New(slog.NewTextHandler(&logs, nil)), scrapeLogEvery)))
	g := gauges(t, reg)
	if g["outboxd_database_up"] != 1 || g["outboxd_pending_messages{crm}"] != 1 {
		t.Fatalf("with river_job locked: %v", g)
	}
	if !strings.Contains(logs.String(), "the last purge's time could not be read") || !strings.Contains(logs.String(), "timeout") {
		t.Fatalf("nothing said why:\n%s", logs.String())
	}
}
