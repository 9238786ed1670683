// Command backlog measures what a backlog costs the dispatcher: claim time,
// the dispatcher's PostgreSQL CPU and a healthy destination's latency, in a
// database with a small backlog (the baseline) and in databases with a large
// one, measured in alternating rounds of the same run:
//
//   - pending: messages of a destination that fails every request ("down"),
//     over a fixed number of ordering keys whose heads come due for their
//     next retry during the run;
//   - retained: delivered messages (with their attempt rows) kept until
//     the purge's retention.
//
// Rows are generated with INSERT ... SELECT generate_series, not through the
// API, and the tables are not analyzed afterwards (autovacuum may be off, as
// on this machine): the plans must be right without statistics.
//
//	go run ./internal/bench/backlog [-pending 10000,1000000] [-retained 10000,1000000] [-keys 1000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/bench/pgbench"
	"github.com/outboxd/outboxd/internal/bench/pgcost"
	"github.com/outboxd/outboxd/internal/pgtest"
)

type options struct {
	keys     int
	spread   time.Duration
	rounds   int
	duration time.Duration
	rate     float64
	downRate float64
}

// scenario is one database: pending messages of the failing destination
// and retained delivered messages.
type scenario struct {
	name              string
	pending, retained int
	url               string
}

func main() {
	adminURL := pgtest.BenchDatabaseURL(flag.CommandLine, "server to benchmark (databases outboxd_bench_backlog_N are created on it)")
	pending := flag.String("pending", "10000,1000000", "pending messages of the failing destination: the baseline, then larger sizes")
	retained := flag.String("retained", "10000,1000000", "retained delivered messages: the baseline, then larger sizes (10000000 for the full size)")
	var o options
	flag.IntVar(&o.keys, "keys", 1000, "ordering keys of the failing destination's backlog")
	flag.DurationVar(&o.spread, "head-spread", time.Minute, "the failing keys' heads come due for a retry spread over this long (an outage's backoff)")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds per database")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of one round")
	flag.Float64Var(&o.rate, "rate", 200, "messages/s offered to the healthy destination")
	flag.Float64Var(&o.downRate, "down-rate", 0, "messages/s offered to the failing destination during a round, each behind one of its keys' heads (an outage under traffic)")
	flag.Parse()
	if err := run(adminURL(), *pending, *retained, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-backlog:", err)
		os.Exit(1)
	}
}

func sizes(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(adminURL, pendingList, retainedList string, o options) error {
	ctx := context.Background()
	pending, err := sizes(pendingList)
	if err != nil {
		return err
	}
	retained, err := sizes(retainedList)
	if err != nil {
		return err
	}
	// The baseline has the first size of both; every other database grows
	// one of them.
	scenarios := []*scenario{{name: "baseline", pending: pending[0], retained: retained[0]}}
	for _, p := range pending[1:] {
		scenarios = append(scenarios, &scenario{name: "pending", pending: p, retained: retained[0]})
	}
	for _, r := range retained[1:] {
		scenarios = append(scenarios, &scenario{name: "retained", pending: pending[0], retained: r})
	}
	for i, s := range scenarios {
		start := time.Now()
		if s.url, err = pgtest.Recreate(ctx, adminURL, "outboxd_bench_backlog_"+strconv.Itoa(i)); err != nil {
			return err
		}
		if err := load(ctx, s, o.keys, o.spread); err != nil {
			return fmt.Errorf("loading %d pending and %d retained: %w", s.pending, s.retained, err)
		}
		fmt.Fprintf(os.Stderr, "loaded %d pending, %d retained in %s\n", s.pending, s.retained, time.Since(start).Round(time.Second))
	}

	results := make([][]figures, len(scenarios))
	for r := 0; r < o.rounds; r++ {
		for i, s := range scenarios {
			f, err := measure(ctx, s, o)
			if err != nil {
				return fmt.Errorf("%d pending, %d retained: %w", s.pending, s.retained, err)
			}
			fmt.Fprintf(os.Stderr, "round %d, %d pending, %d retained: %+v\n", r+1, s.pending, s.retained, f)
			results[i] = append(results[i], f)
		}
	}

	fmt.Printf("Backlog benchmark: %d CPUs, %s, %s; up to %d keys in the failing destination's backlog, heads due over %s; %d x %s rounds, %.0f msg/s to the healthy destination, %.0f msg/s to the failing one, medians\n\n",
		runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"), o.keys, o.spread, o.rounds, o.duration, o.rate, o.downRate)
	fmt.Println("| pending (failing) | retained | claim, failing dest. | claim, healthy dest. | dispatcher PG CPU | PG CPU / healthy msg | WAL / healthy msg | non-HOT row writes / healthy msg | b-tree entries / healthy msg | healthy p50 | healthy p99 |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	base := median(results[0])
	for i, s := range scenarios {
		f := median(results[i])
		fmt.Printf("| %d | %d | %s (%.2fx) | %s (%.2fx) | %.0f ms/s (%.2fx) | %.0f us | %.0f B | %.2f | %s | %s (%.2fx) | %s (%.2fx) |\n",
			s.pending, s.retained,
			us(f.claimDown), f.claimDown/base.claimDown, us(f.claimSink), f.claimSink/base.claimSink,
			f.cpuPerSec*1000, f.cpuPerSec/base.cpuPerSec, f.cpuPerMsg*1e6, f.walPerMsg, f.writesPerMsg, pgcost.EntriesCell(f.entriesPerMsg),
			ms(f.p50), f.p50/base.p50, ms(f.p99), f.p99/base.p99)
	}
	fmt.Println("\nGoal: claim time and dispatcher CPU within 2x of the baseline's at every size; the healthy destination's latency unaffected.")
	return nil
}

// median takes each figure's median over the rounds.
func median(fs []figures) figures {
	pick := func(get func(figures) float64) float64 {
		xs := make([]float64, len(fs))
		for i, f := range fs {
			xs[i] = get(f)
		}
		return pgbench.Median(xs)
	}
	return figures{
		claimDown:     pick(func(f figures) float64 { return f.claimDown }),
		claimSink:     pick(func(f figures) float64 { return f.claimSink }),
		cpuPerSec:     pick(func(f figures) float64 { return f.cpuPerSec }),
		cpuPerMsg:     pick(func(f figures) float64 { return f.cpuPerMsg }),
		walPerMsg:     pick(func(f figures) float64 { return f.walPerMsg }),
		writesPerMsg:  pick(func(f figures) float64 { return f.writesPerMsg }),
		entriesPerMsg: pick(func(f figures) float64 { return f.entriesPerMsg }),
		p50:           pick(func(f figures) float64 { return f.p50 }),
		p99:           pick(func(f figures) float64 { return f.p99 }),
	}
}

func us(seconds float64) string { return fmt.Sprintf("%.2f ms", seconds*1000) }
func ms(seconds float64) string { return fmt.Sprintf("%.1f ms", seconds*1000) }

// load generates the scenario's rows in SQL. The failing destination's
// backlog: keys ordering keys, the head of each retrying (three attempts
// so far) and due again at a time spread over the next spread, the rest
// behind it. Retained: delivered messages over 100,000 keys, each with its
// attempt row. Then a checkpoint, and no ANALYZE.
func load(ctx context.Context, s *scenario, keys int, spread time.Duration) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	const chunk = 1_000_000
	for from := 0; from < s.pending; from += chunk {
		if _, err := conn.Exec(ctx, `
INSERT INTO outboxd.outbox_messages (id, destination, type, ordering_key, seq, payload, idempotency_key,
                                     attempts, next_attempt_at, created_at)
SELECT gen_random_uuid(), 'down', 'deal.won', 'cust-' || (i % $3), i / $3 + 1,
       convert_to(rpad('{"n":' || i || '}', 300), 'UTF8'), 'down-' || i,
       CASE WHEN i < $3 THEN 3 ELSE 0 END,
       CASE WHEN i < $3 THEN now() + i * ($4::bigint * interval '1 millisecond') / $3
            ELSE now() - interval '1 hour' END,
       now() - interval '1 hour' + i * interval '1 microsecond'
FROM generate_series($1::bigint, $2::bigint) i`, from, min(from+chunk, s.pending)-1, keys, spread.Milliseconds()); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO outboxd.outbox_keys (ordering_key, last_seq)
SELECT 'cust-' || k, ($2::bigint - 1 - k) / $1::int + 1 FROM generate_series(0, least($1::int, $2::int) - 1) k`, keys, s.pending); err != nil {
		return err
	}
	for from := 0; from < s.retained; from += chunk {
		to := min(from+chunk, s.retained) - 1
		if _, err := conn.Exec(ctx, `
INSERT INTO outboxd.outbox_messages (id, destination, type, ordering_key, seq, payload, idempotency_key,
                                     status, attempts, next_attempt_at, created_at, delivered_at)
SELECT gen_random_uuid(), 'sink', 'deal.won', 'old-' || (i % 100000), i / 100000 + 1,
       convert_to(rpad('{"n":' || i || '}', 300), 'UTF8'), 'old-' || i,
       'delivered', 1, now() - interval '2 hours', now() - interval '2 hours', now() - interval '1 hour'
FROM generate_series($1::bigint, $2::bigint) i`, from, to); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, `
INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code)
SELECT id, 1, delivered_at, 1.5, 'delivered', 200 FROM outboxd.outbox_messages WHERE status = 'delivered'`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `INSERT INTO outboxd.outbox_keys (ordering_key, last_seq)
SELECT 'old-' || k, ($1::bigint - 1 - k) / 100000 + 1 FROM generate_series(0, least(100000, $1::int) - 1) k`, s.retained); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `CHECKPOINT`)
	return err
}
