// Command enqueue measures what outbox.Enqueue costs the application's own
// transactions: one message per transaction at 1 and 16 connections,
// announced by a Notifier (the fast path) and by a NOTIFY in the
// transaction (Enqueue without a Notifier), beside pgbench running a plain
// INSERT of the same row into a table with the same indexes and no trigger
// (the baseline: what a user would write without outboxd) and the same
// INSERT sent through pgx by this process, in alternating
// rounds of one run. It prints a Markdown table with tx/s, and WAL bytes and
// WAL fsyncs per message stored (the Notifier's own commits included).
//
//	go run ./internal/bench/enqueue [-database-url URL] [-duration 5s] [-rounds 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/bench/pgbench"
	"github.com/outboxd/outboxd/internal/bench/pgcost"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

func main() {
	adminURL := pgtest.BenchDatabaseURL(flag.CommandLine, "server to benchmark (a database outboxd_bench_enqueue is created on it)")
	d := flag.Duration("duration", 5*time.Second, "length of each measurement")
	rounds := flag.Int("rounds", 3, "alternating rounds per concurrency")
	flag.DurationVar(&busyInterval, "busy-interval", 0, "the Notifier's BusyInterval (0: its default)")
	flag.Parse()
	if err := run(adminURL(), *d, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench-enqueue:", err)
		os.Exit(1)
	}
}

// figures of one system at one concurrency: medians over the rounds.
type figures struct{ tps, walBytes, syncsPerCommit, writes, entries, cpuUS, clientUS []float64 }

func run(adminURL string, d time.Duration, rounds int) error {
	ctx := context.Background()
	url, err := pgtest.Recreate(ctx, adminURL, "outboxd_bench_enqueue")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `CREATE TABLE bench_plain (LIKE outboxd.outbox_messages INCLUDING ALL)`)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	script := filepath.Join("internal", "bench", "enqueue", "plain.pgbench")
	if _, err := os.Stat(script); err != nil {
		return fmt.Errorf("pgbench script: %w (run from the repository root)", err)
	}
	systems := []struct {
		name, table string
		measure     func(conns int) (float64, error)
	}{
		{"pgbench: plain INSERT, no trigger (baseline)", "bench_plain", func(c int) (float64, error) { return pgbench.Run(url, script, c, d) }},
		{"plain INSERT through pgx, no trigger (a Go service without outboxd)", "bench_plain", func(c int) (float64, error) { return measurePlainPgx(ctx, url, c, d) }},
		{"outbox.Enqueue with a Notifier", "outboxd.outbox_messages", func(c int) (float64, error) { return measureEnqueue(ctx, url, c, d, true) }},
		{"outbox.Enqueue, NOTIFY in the transaction", "outboxd.outbox_messages", func(c int) (float64, error) { return measureEnqueue(ctx, url, c, d, false) }},
	}
	fmt.Printf("Enqueue, one message per transaction, %s per measurement, %d alternating rounds; %d CPUs, %s\n\n", d, rounds, runtime.NumCPU(), runtime.Version())
	cost, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer cost.Close(ctx)
	fmt.Println("| connections | system | tx/s | % of baseline | WAL bytes / message | WAL fsyncs / message | row versions written / message | b-tree entries / message | server CPU / message | client CPU / message |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, conns := range []int{1, 16} {
		res := make([]figures, len(systems))
		for r := 0; r < rounds; r++ {
			for i, s := range systems {
				before, err := pgbench.ReadWAL(ctx, url, s.table)
				if err != nil {
					return err
				}
				cpuBefore, err := quiescedCost(ctx, cost)
				if err != nil {
					return err
				}
				clientBefore := pgcost.ClientCPU()
				tps, err := s.measure(conns)
				client := pgcost.ClientCPU() - clientBefore
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				cpuAfter, err := quiescedCost(ctx, cost)
				if err != nil {
					return err
				}
				after, err := pgbench.ReadWAL(ctx, url, s.table)
				if err != nil {
					return err
				}
				w := after.Sub(before)
				res[i].tps = append(res[i].tps, tps)
				res[i].walBytes = append(res[i].walBytes, w.Bytes/max(w.Rows, 1))
				res[i].syncsPerCommit = append(res[i].syncsPerCommit, w.Syncs/max(w.Rows, 1))
				c := cpuAfter.Sub(cpuBefore)
				res[i].writes = append(res[i].writes, c.Writes/max(w.Rows, 1))
				res[i].entries = append(res[i].entries, pgcost.EntriesPer(pgcost.Entries(ctx, cost, cpuBefore, cpuAfter), w.Rows))
				res[i].cpuUS = append(res[i].cpuUS, c.CPU*1e6/max(w.Rows, 1))
				res[i].clientUS = append(res[i].clientUS, client*1e6/max(w.Rows, 1))
			}
		}
		base := pgbench.Median(res[0].tps)
		for i, s := range systems {
			tps := pgbench.Median(res[i].tps)
			fmt.Printf("| %d | %s | %.0f | %.0f%% | %.0f | %.2f | %.2f | %s | %.0f µs | %.0f µs |\n", conns, s.name, tps, 100*tps/base,
				pgbench.Median(res[i].walBytes), pgbench.Median(res[i].syncsPerCommit),
				pgbench.Median(res[i].writes), pgcost.EntriesCell(pgbench.Median(res[i].entries)), pgbench.Median(res[i].cpuUS), pgbench.Median(res[i].clientUS))
		}
	}
	return nil
}

// quiescedCost reads the server's counters once the measured connections
// have gone (their statistics and CPU are then counted).
func quiescedCost(ctx context.Context, conn *pgx.Conn) (pgcost.Reading, error) {
	if err := pgcost.Quiesce(ctx, conn); err != nil {
		return pgcost.Reading{}, err
	}
	return pgcost.Read(ctx, conn)
}

// measureEnqueue commits one message per transaction through Enqueue with
// conns workers for d, and returns tx/s. With notify, a Notifier on its own
// connection announces the commits, as an application should run it.
func measureEnqueue(ctx context.Context, url string, conns int, d time.Duration, notify bool) (float64, error) {
	var oc outbox.Config
	if notify {
		npool, err := pgxpool.New(ctx, url+"&pool_max_conns=1")
		if err != nil {
			return 0, err
		}
		defer npool.Close()
		if oc.Notifier, err = outbox.NewNotifier(npool, &outbox.NotifierConfig{BusyInterval: busyInterval}); err != nil {
			return 0, err
		}
		if err := oc.Notifier.Start(ctx); err != nil {
			return 0, err
		}
		defer func() { _ = oc.Notifier.Stop(ctx) }()
	}
	ob, err := outbox.New(&oc)
	if err != nil {
		return 0, err
	}
	return pgbench.Drive(ctx, url, conns, d, func(tx pgx.Tx) error {
		_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "email-api", Type: "email.welcome", Payload: payload})
		return err
	})
}

// plainSQL is plain.pgbench's INSERT as a Go service would send it through
// pgx: a UUIDv7 made in Go, its text as the idempotency key.
const plainSQL = `INSERT INTO bench_plain
    (id, destination, type, ordering_key, seq, payload, headers,
     idempotency_key, caused_by_source, caused_by_event_id, step)
VALUES ($1, 'email-api', 'email.welcome', NULL, NULL, $2, '{}', $3, NULL, NULL, '')
RETURNING seq, created_at`

// measurePlainPgx is the baseline's INSERT sent by this process through
// pgx, as a Go service without outboxd would: what is left between it and
// pgbench is the Go client, not outboxd.
func measurePlainPgx(ctx context.Context, url string, conns int, d time.Duration) (float64, error) {
	return pgbench.Drive(ctx, url, conns, d, func(tx pgx.Tx) error {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		var (
			seq     *int64
			created time.Time
		)
		return tx.QueryRow(ctx, plainSQL, pgtype.UUID{Bytes: id, Valid: true}, payload, id.String()).Scan(&seq, &created)
	})
}

var busyInterval time.Duration // -busy-interval

var payload = []byte(`{"to":"ada@example.com","template":"welcome"}`)
