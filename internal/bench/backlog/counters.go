package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/bench/pgcost"
)

// appName marks the dispatcher's connections, whose server processes' CPU
// we read from /proc.
const appName = "outboxd_bench_backlog_dispatcher"

// counters are the server-side readings taken before and after a round.
type counters struct {
	cpu    map[int]float64 // backend pid -> CPU seconds
	wal    float64
	lsn    string  // the WAL position as PostgreSQL writes it (for btreeEntries)
	writes float64 // row versions written to the outbox tables, not HOT
}

// read takes the server-side counters: the CPU of the dispatcher's server
// processes (utime + stime in /proc/<pid>/stat: the server runs on this
// machine), the WAL position, and the row versions written to the outbox
// tables that were not HOT updates (each one is an entry in every index
// whose predicate it meets).
func read(ctx context.Context, pool *pgxpool.Pool) (counters, error) {
	c := counters{cpu: map[int]float64{}}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, appName)
	if err != nil {
		return c, err
	}
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return c, err
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	for _, pid := range pids {
		if t, err := procCPU(pid); err == nil {
			c.cpu[pid] = t
		}
	}
	err = pool.QueryRow(ctx, `
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, pg_current_wal_lsn()::text,
       (SELECT sum(n_tup_ins + n_tup_upd - n_tup_hot_upd)::float8 FROM pg_stat_user_tables
        WHERE schemaname = 'outboxd' AND relname IN ('outbox_messages', 'outbox_attempts', 'outbox_keys'))`).Scan(&c.wal, &c.lsn, &c.writes)
	return c, err
}

// btreeEntries counts the b-tree entries written between two readings
// (pgcost.Entries: server-wide, -1 when pg_walinspect is missing or the
// WAL is gone).
func btreeEntries(ctx context.Context, pool *pgxpool.Pool, before, after counters) float64 {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return -1
	}
	defer conn.Release()
	return pgcost.Entries(ctx, conn.Conn(), pgcost.Reading{LSN: before.lsn}, pgcost.Reading{LSN: after.lsn})
}

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTick = 100

func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err := strconv.ParseFloat(fields[11], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat utime: %w", pid, err)
	}
	stime, err := strconv.ParseFloat(fields[12], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat stime: %w", pid, err)
	}
	return (utime + stime) / clockTick, nil
}

// claimTotals is one destination's claim histogram: count and sum.
type claimTotals struct{ count, sum float64 }

func (a claimTotals) mean(b claimTotals) float64 {
	if a.count == b.count {
		return 0
	}
	return (a.sum - b.sum) / (a.count - b.count)
}

func claimTimes(reg *prometheus.Registry) (map[string]claimTotals, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]claimTotals{}
	for _, mf := range mfs {
		if mf.GetName() != "outboxd_claim_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" {
					out[l.GetValue()] = claimTotals{float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()}
				}
			}
		}
	}
	return out, nil
}
