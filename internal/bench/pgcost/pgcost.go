// Package pgcost reads what a benchmark costs the PostgreSQL server: WAL
// bytes and fsyncs, row versions written, b-tree index entries written
// (counted in the WAL between two readings with pg_walinspect), and the
// server's CPU time. Take a Reading before and after a measurement and
// subtract them; Entries counts the index entries between them.
//
// The CPU is read from /proc, so it needs the server on this machine (the
// benchmarks' setting) and counts all of its processes, whatever database
// they serve: run nothing else meanwhile. It includes the processes that
// ended during the measurement (pgbench's connections close before the
// second reading): the postmaster's cutime/cstime hold the CPU of the
// children it has reaped.
package pgcost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reading is the server's counters at one moment.
type Reading struct {
	WALBytes float64 // the WAL position (exact at once)
	LSN      string  // the same, as PostgreSQL writes it (for Entries)
	// WALSyncs is pg_stat_wal.wal_sync. It and Writes are statistics that
	// a busy backend reports at most once a second (an idle one within
	// 10 s; one that exits, at once): read after the measured connections
	// closed, or a few seconds after their last transaction.
	WALSyncs float64
	// Writes are the row versions written to the database's tables:
	// inserts plus updates that were not HOT. Each adds an entry to every
	// index of its table whose predicate it meets; a HOT update adds none.
	Writes float64
	// CPU is the server's CPU seconds (user + system), or -1 if /proc
	// cannot be read (a server on another machine).
	CPU float64
	// Entries are the b-tree index entries written between two readings
	// (Entries sets it in a difference; -1: not counted).
	Entries float64
}

// Read takes a Reading through conn.
func Read(ctx context.Context, conn *pgx.Conn) (Reading, error) {
	var r Reading
	var backend int
	err := conn.QueryRow(ctx, `
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, pg_current_wal_lsn()::text, wal_sync::float8,
       (SELECT coalesce(sum(n_tup_ins + n_tup_upd - n_tup_hot_upd), 0)::float8 FROM pg_stat_user_tables),
       pg_backend_pid()
FROM pg_stat_wal`).Scan(&r.WALBytes, &r.LSN, &r.WALSyncs, &r.Writes, &backend)
	if err != nil {
		return r, err
	}
	// The statistics of this backend's own writes reach the views only when
	// it reports them; ask for a fresh snapshot next time.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		return r, err
	}
	r.CPU, err = serverCPU(backend)
	if err != nil {
		r.CPU = -1
	}
	return r, nil
}

// Sub returns r - o, its entries not counted (see Entries).
func (r Reading) Sub(o Reading) Reading {
	cpu := r.CPU - o.CPU
	if r.CPU < 0 || o.CPU < 0 {
		cpu = -1
	}
	return Reading{WALBytes: r.WALBytes - o.WALBytes, WALSyncs: r.WALSyncs - o.WALSyncs, Writes: r.Writes - o.Writes, CPU: cpu, Entries: -1}
}

// Entries counts the b-tree index entries written to the WAL between two
// readings, server-wide (as the WAL bytes): the leaf insertions, each
// logged as an insert or, when the leaf splits, with the split. It creates
// the pg_walinspect extension (PostgreSQL 15's contrib) in conn's
// database, and returns -1 when it cannot (no superuser, no contrib) or
// the WAL is gone.
func Entries(ctx context.Context, conn *pgx.Conn, from, to Reading) float64 {
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		return -1
	}
	var n float64
	err := conn.QueryRow(ctx, `SELECT coalesce(sum(count), 0)::float8 FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true)
WHERE "resource_manager/record_type" IN ('Btree/INSERT_LEAF', 'Btree/INSERT_POST', 'Btree/SPLIT_L', 'Btree/SPLIT_R')`, from.LSN, to.LSN).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

// PerMessage formats WAL bytes, row versions written, b-tree entries and
// server CPU (microseconds) per message, n messages, as Markdown table
// cells.
func (r Reading) PerMessage(n float64) string {
	n = max(n, 1)
	cpu := "n/a"
	if r.CPU >= 0 {
		cpu = fmt.Sprintf("%.0f µs", r.CPU*1e6/n)
	}
	return fmt.Sprintf("%.0f | %.2f | %s | %s", r.WALBytes/n, r.Writes/n, EntriesCell(EntriesPer(r.Entries, n)), cpu)
}

// EntriesPer divides a count of entries by n, keeping -1 (not counted).
func EntriesPer(entries, n float64) float64 {
	if entries < 0 {
		return -1
	}
	return entries / max(n, 1)
}

// EntriesCell formats entries per message as a table cell: "n/a" when not
// counted.
func EntriesCell(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// Header is the table header cells matching PerMessage.
const Header = "WAL bytes / msg | row versions written / msg | b-tree entries / msg | server CPU / msg"

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTick = 100

// serverCPU sums the CPU of the postmaster (with its reaped children's)
// and of its live children; backend is one of them.
//
// A child reaped while the children are read would be in neither sum (its
// CPU reaches the postmaster's after that was read): a benchmark's one
// backend, ending just before the reading, went missing so, and the
// reading is taken again until the postmaster reaped nothing meanwhile.
func serverCPU(backend int) (float64, error) {
	f, err := stat(backend)
	if err != nil {
		return 0, err
	}
	postmaster, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, err
	}
	for try := 0; ; try++ {
		pm, err := stat(postmaster)
		if err != nil {
			return 0, err
		}
		total := ticks(pm, 11, 12) + childrenCPU(f[1])
		after, err := stat(postmaster)
		if err != nil {
			return 0, err
		}
		if ticks(after, 13, 14) == ticks(pm, 13, 14) || try == 100 {
			return (total + ticks(pm, 13, 14)) / clockTick, nil
		}
	}
}

// childrenCPU sums the CPU ticks of the live children of ppid.
func childrenCPU(ppid string) float64 {
	var total float64
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		c, err := stat(pid)
		if err != nil || c[1] != ppid { // gone meanwhile, or not a child
			continue
		}
		total += ticks(c, 11, 12)
	}
	return total
}

// stat returns the fields of /proc/<pid>/stat after the command name:
// [0] state, [1] ppid, ..., [11] utime, [12] stime, [13] cutime, [14] cstime.
func stat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil, fmt.Errorf("odd /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 15 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}

func ticks(f []string, idx ...int) float64 {
	var t float64
	for _, i := range idx {
		v, _ := strconv.ParseFloat(f[i], 64)
		t += v
	}
	return t
}

// Quiesce waits (up to 5 s) until conn's is the only client backend on its
// database: the measured connections have exited, so their statistics
// are in the views and their CPU in the postmaster's reaped total.
func Quiesce(ctx context.Context, conn *pgx.Conn) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var others int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&others)
		if err != nil || others == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcost: %d other connections still on the database after 5 s", others)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ClientCPU is the CPU seconds this process and its reaped children (a
// pgbench run) have used so far, user and system: the client side of a
// measurement, beside the server's.
func ClientCPU() float64 {
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) != nil {
		return 0
	}
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano()).Seconds()
}
