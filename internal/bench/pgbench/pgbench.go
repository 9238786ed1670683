// Package pgbench runs PostgreSQL's pgbench and measures the server's WAL
// for the benchmarks: the baseline a user would get without outboxd.
package pgbench

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// Run runs script against url with conns clients for d and returns tx/s.
func Run(url, script string, conns int, d time.Duration) (float64, error) {
	threads := min(conns, runtime.NumCPU())
	cmd := exec.Command("pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(conns), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(max(1, int(d.Seconds()))), "-f", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no tps line:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// Median of xs (sorted in place).
func Median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// WAL is a reading of the server's WAL counters (pg_stat_wal) and of the
// rows in one table.
type WAL struct {
	Bytes float64 // WAL bytes written
	Syncs float64 // WAL fsyncs
	Rows  float64 // rows in the table read
}

// ReadWAL reads the counters and counts table's rows; subtract two readings
// for one measurement. table is a constant of the caller's, never input.
func ReadWAL(ctx context.Context, url, table string) (WAL, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return WAL{}, err
	}
	defer conn.Close(ctx)
	var w WAL
	err = conn.QueryRow(ctx, `SELECT wal_bytes::float8, wal_sync::float8, (SELECT count(*)::float8 FROM `+
		pgx.Identifier(strings.Split(table, ".")).Sanitize()+`) FROM pg_stat_wal`).Scan(&w.Bytes, &w.Syncs, &w.Rows)
	return w, err
}

// Sub returns the difference w - o.
func (w WAL) Sub(o WAL) WAL { return WAL{w.Bytes - o.Bytes, w.Syncs - o.Syncs, w.Rows - o.Rows} }

// FixedPool opens a pool of exactly conns connections on url, the Go side's
// counterpart of pgbench's -c: every connection is open before the clock
// starts. The caller closes it.
func FixedPool(ctx context.Context, url string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = int32(conns), int32(conns)
	return pgxpool.NewWithConfig(ctx, cfg)
}

// Drive runs one transaction with work in it per iteration, on conns
// connections for d, and returns tx/s: the Go side's counterpart of
// pgbench's loop. The first error stops the measurement.
func Drive(ctx context.Context, url string, conns int, d time.Duration, work func(pgx.Tx) error) (float64, error) {
	pool, err := FixedPool(ctx, url, conns)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	var (
		done     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := pgx.BeginFunc(ctx, pool, work); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), firstErr
}
