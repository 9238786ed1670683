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
	"strconv"
	"sync"
	"sync/atomic"
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
	adminURL := flag.String("database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "server to benchmark (a database outboxd_bench is created on it)")
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
		if url, err = freshDatabase(context.Background(), *adminURL); err == nil {
			if script, err = scriptPath(); err == nil {
				err = runHTTP(url, script, 16, *duration, *rounds)
			}
		}
	} else if *purge > 0 {
		var url string
		if url, err = freshDatabase(context.Background(), *adminURL); err == nil {
			err = runPurge(url, *purge, *duration)
		}
	} else {
		err = run(*adminURL, *duration, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-receipt:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
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
	in, _ := inbox.New(nil)

	cost, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer cost.Close(ctx)
	fmt.Printf("Receipt transaction, %s per measurement, %d alternating rounds; %d CPUs, %s\n\n", d, rounds, runtime.NumCPU(), runtime.Version())
	fmt.Printf("| connections | outboxd tx/s | pgbench tx/s | outboxd / pgbench | outboxd: %s | pgbench: %s |\n", pgcost.Header, pgcost.Header)
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, conns := range []int{1, 16} {
		var ours, theirs []float64
		var oursCost, theirsCost []costPerTx
		for r := 0; r < rounds; r++ {
			tps, c, err := measured(ctx, cost, func() (float64, error) { return measureOurs(ctx, url, in, conns, d) })
			if err != nil {
				return err
			}
			ours, oursCost = append(ours, tps), append(oursCost, c)
			tps, c, err = measured(ctx, cost, func() (float64, error) { return pgbench.Run(url, script, conns, d) })
			if err != nil {
				return err
			}
			theirs, theirsCost = append(theirs, tps), append(theirsCost, c)
		}
		o, p := pgbench.Median(ours), pgbench.Median(theirs)
		fmt.Printf("| %d | %.0f | %.0f | %.0f%% | %s | %s |\n", conns, o, p, 100*o/p, medianCost(oursCost), medianCost(theirsCost))
	}
	return nil
}

// costPerTx is what one receipt cost the server: WAL bytes, row versions
// written and CPU seconds.
type costPerTx struct{ wal, writes, cpu float64 }

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
	tps, err := fn()
	if err != nil {
		return 0, costPerTx{}, err
	}
	after, n1, err := read()
	if err != nil {
		return 0, costPerTx{}, err
	}
	c, n := after.Sub(before), max(n1-n0, 1)
	return tps, costPerTx{c.WALBytes / n, c.Writes / n, c.CPU / n}, nil
}

func medianCost(cs []costPerTx) string {
	var wal, writes, cpu []float64
	for _, c := range cs {
		wal, writes, cpu = append(wal, c.wal), append(writes, c.writes), append(cpu, c.cpu)
	}
	return pgcost.Reading{WALBytes: pgbench.Median(wal), Writes: pgbench.Median(writes), CPU: pgbench.Median(cpu)}.PerMessage(1)
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
	pool, err := pgbench.FixedPool(ctx, url, conns)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
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
	var (
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := receipt(ctx, pool, in, ob); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

func receipt(ctx context.Context, pool *pgxpool.Pool, in *inbox.Inbox, ob *outbox.Outbox) error {
	id := "evt_" + strconv.FormatInt(rand.Int64(), 10)
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
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
	})
}

func scriptPath() (string, error) {
	// Run from the module root (make bench-receipt does).
	p := filepath.Join("internal", "bench", "receipt", "receipt.pgbench")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pgbench script: %w (run from the repository root)", err)
	}
	return p, nil
}
