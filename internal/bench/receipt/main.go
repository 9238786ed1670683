// Command receipt measures the webhook receipt transaction (inbox record +
// one business row + one outbox enqueue + commit) through outboxd's Go API
// at 1 and 16 connections, and pgbench running the same statements against
// the same server in the same run, alternating, and prints a Markdown table.
//
//	go run ./internal/bench/receipt [-database-url URL] [-duration 10s] [-rounds 3]
//	go run ./internal/bench/receipt -purge 1000000   receipts while the purge runs
//	go run ./internal/bench/receipt -http            signed receipt over HTTP, new and duplicate
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/bench/pgbench"
	"github.com/outboxd/outboxd/internal/bench/pgcost"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

func main() {
	adminURL := pgtest.BenchDatabaseURL(flag.CommandLine, "server to benchmark (a database outboxd_bench is created on it)")
	duration := flag.Duration("duration", 10*time.Second, "length of each measurement")
	rounds := flag.Int("rounds", 3, "alternating rounds of (outboxd, pgbench) per concurrency")
	purge := flag.Int("purge", 0, "instead: measure receipt latency while purging this many expired inbox keys")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process to the file")
	overHTTP := flag.Bool("http", false, "instead: signed webhook receipt over HTTP, new events and duplicates, 16 clients, beside pgbench")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	var err error
	if *overHTTP {
		var url, script string
		if url, err = freshDatabase(context.Background(), adminURL()); err == nil {
			if script, err = scriptPath(); err == nil {
				err = runHTTP(url, script, 16, *duration, *rounds)
			}
		}
	} else if *purge > 0 {
		var url string
		if url, err = freshDatabase(context.Background(), adminURL()); err == nil {
			err = runPurge(url, *purge, *duration)
		}
	} else {
		err = run(adminURL(), *duration, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-receipt:", err)
		os.Exit(1)
	}
}

func run(adminURL string, d time.Duration, rounds int) error {
	ctx := context.Background()
	url, err := freshDatabase(ctx, adminURL)
	if err != nil {
		return err
	}
	script, err := scriptPath()
	if err != nil {
		return err
	}
	same, err := loadSameSQL(script)
	if err != nil {
		return err
	}
	in, _ := inbox.New(nil)

	cost, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer cost.Close(ctx)
	// pgbench first: the baseline the others are a percentage of.
	systems := []struct {
		name    string
		measure func(conns int) (float64, error)
	}{
		{"pgbench: the three INSERTs, no outboxd (baseline)", func(c int) (float64, error) { return pgbench.Run(url, script, c, d) }},
		{"the same statements through pgx (a Go service without outboxd)", func(c int) (float64, error) { return same.measure(ctx, url, c, d) }},
		{"outboxd: inbox.Record + INSERT + outbox.Enqueue, with a Notifier", func(c int) (float64, error) { return measureOurs(ctx, url, in, c, d) }},
	}
	fmt.Printf("Receipt transaction, %s per measurement, %d alternating rounds; %d CPUs, %s\n\n", d, rounds, runtime.NumCPU(), runtime.Version())
	fmt.Printf("| connections | system | tx/s | %% of pgbench | %s | client CPU / msg |\n", pgcost.Header)
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, conns := range []int{1, 16} {
		tps := make([][]float64, len(systems))
		costs := make([][]costPerTx, len(systems))
		for r := 0; r < rounds; r++ {
			for i, s := range systems {
				t, c, err := measured(ctx, cost, func() (float64, error) { return s.measure(conns) })
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				tps[i], costs[i] = append(tps[i], t), append(costs[i], c)
			}
		}
		base := pgbench.Median(slices.Clone(tps[0]))
		for i, s := range systems {
			t := pgbench.Median(tps[i])
			fmt.Printf("| %d | %s | %.0f | %.0f%% | %s |\n", conns, s.name, t, 100*t/base, medianCost(costs[i]))
		}
	}
	return nil
}

// costPerTx is what one receipt cost the server (WAL bytes, row versions
// written, CPU seconds) and this process with its reaped children
// (pgbench): client CPU seconds.
type costPerTx struct{ wal, writes, entries, cpu, client float64 }

// measured runs fn (which returns tx/s over its duration) between two
// readings of the server's counters, taken once fn's connections are gone,
// and divides the difference by the receipts committed (bench_leads rows).
func measured(ctx context.Context, conn *pgx.Conn, fn func() (float64, error)) (float64, costPerTx, error) {
	read := func() (pgcost.Reading, float64, error) {
		if err := pgcost.Quiesce(ctx, conn); err != nil {
			return pgcost.Reading{}, 0, err
		}
		var n float64
		if err := conn.QueryRow(ctx, `SELECT count(*)::float8 FROM bench_leads`).Scan(&n); err != nil {
			return pgcost.Reading{}, 0, err
		}
		r, err := pgcost.Read(ctx, conn)
		return r, n, err
	}
	before, n0, err := read()
	if err != nil {
		return 0, costPerTx{}, err
	}
	client := pgcost.ClientCPU()
	tps, err := fn()
	if err != nil {
		return 0, costPerTx{}, err
	}
	client = pgcost.ClientCPU() - client
	after, n1, err := read()
	if err != nil {
		return 0, costPerTx{}, err
	}
	c, n := after.Sub(before), max(n1-n0, 1)
	entries := pgcost.EntriesPer(pgcost.Entries(ctx, conn, before, after), n)
	return tps, costPerTx{c.WALBytes / n, c.Writes / n, entries, c.CPU / n, client / n}, nil
}

func medianCost(cs []costPerTx) string {
	var wal, writes, entries, cpu, client []float64
	for _, c := range cs {
		wal, writes, cpu, client = append(wal, c.wal), append(writes, c.writes), append(cpu, c.cpu), append(client, c.client)
		entries = append(entries, c.entries)
	}
	r := pgcost.Reading{WALBytes: pgbench.Median(wal), Writes: pgbench.Median(writes), Entries: pgbench.Median(entries), CPU: pgbench.Median(cpu)}
	return fmt.Sprintf("%s | %.0f µs", r.PerMessage(1),
		pgbench.Median(client)*1e6)
}

// freshDatabase (re)creates outboxd_bench, migrated, with the business table.
func freshDatabase(ctx context.Context, adminURL string) (string, error) {
	url, err := pgtest.Recreate(ctx, adminURL, "outboxd_bench")
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE bench_leads (id bigserial PRIMARY KEY, email text NOT NULL, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	return url, err
}

var payload = []byte(`{"id":"evt","type":"lead.created","data":{"email":"ada@example.com","name":"Ada Lovelace","phone":"+15550100","source":"landing-page","utm":"spring"}}`)

// measureOurs runs receipts through outboxd's API, its Outbox announcing
// commits through a Notifier (on a connection of its own, as an
// application would give it), so no enqueueing transaction NOTIFYs.
func measureOurs(ctx context.Context, url string, in *inbox.Inbox, conns int, d time.Duration) (float64, error) {
	npool, err := pgxpool.New(ctx, url+"&pool_max_conns=1")
	if err != nil {
		return 0, err
	}
	defer npool.Close()
	n, err := outbox.NewNotifier(npool, nil)
	if err != nil {
		return 0, err
	}
	if err := n.Start(ctx); err != nil {
		return 0, err
	}
	defer func() { _ = n.Stop(ctx) }()
	ob, err := outbox.New(&outbox.Config{Notifier: n})
	if err != nil {
		return 0, err
	}
	return pgbench.Drive(ctx, url, conns, d, func(tx pgx.Tx) error { return receiptTx(ctx, tx, in, ob) })
}

func receipt(ctx context.Context, pool *pgxpool.Pool, in *inbox.Inbox, ob *outbox.Outbox) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return receiptTx(ctx, tx, in, ob) })
}

// receiptTx is one receipt in tx: the inbox record, the business row and
// the enqueue.
func receiptTx(ctx context.Context, tx pgx.Tx, in *inbox.Inbox, ob *outbox.Outbox) error {
	id := "evt_" + strconv.FormatInt(rand.Int64(), 10)
	res, err := in.Record(ctx, tx, inbox.Event{
		Source: "bench", ID: id, Type: "lead.created", Payload: payload,
		Headers: http.Header{"Content-Type": {"application/json"}, "Webhook-Id": {"evt"}},
		Refs:    map[string]string{"email": "ada@example.com"},
	})
	if err != nil || !res.New {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO bench_leads (email, name) VALUES ($1, $2)`, "ada@example.com", "Ada Lovelace"); err != nil {
		return err
	}
	_, err = ob.Enqueue(ctx, tx, outbox.Message{
		Destination: "email-api", Type: "email.welcome",
		OrderingKey: "contact-" + strconv.Itoa(1+rand.IntN(10000)),
		Payload:     []byte(`{"to":"ada@example.com","template":"welcome"}`),
		CausedBy:    &outbox.EventRef{Source: "bench", EventID: id},
	})
	return err
}

func scriptPath() (string, error) {
	// Run from the module root (make bench-receipt does).
	p := filepath.Join("internal", "bench", "receipt", "receipt.pgbench")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pgbench script: %w (run from the repository root)", err)
	}
	return p, nil
}
