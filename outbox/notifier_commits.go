package outbox

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// commitsUnderWaySQL returns which of the transactions $1 are running
// their COMMIT (their session active in a COMMIT or END statement: waiting
// for the WAL flush, a standby's answer, or a lock a deferred trigger
// takes), and which no session holds any more (gone: the transaction ended
// after the question that found it open, or was prepared for two-phase
// commit). A session idle in its transaction, or running its own
// statements, is neither. Comments before the COMMIT (a driver's or a
// tracer's tag) are skipped. Every role sees which transaction a session
// holds, but PostgreSQL shows its state and statement only to its own
// role (and its members), superusers and pg_read_all_stats, and only with
// track_activities on: otherwise a COMMIT under way is not seen, and the
// Notifier backs off from it as before.
const commitsUnderWaySQL = `
SELECT u.x, a.pid IS NULL AS gone
FROM unnest($1::bigint[]) AS u(x)
LEFT JOIN pg_stat_get_activity(NULL) a ON a.backend_xid = xid(u.x::text::xid8)
WHERE a.pid IS NULL
   OR (a.state = 'active' AND a.query ~* '^(\s|/\*([^*]|\*+[^*/])*\*+/|--[^\n]*\n)*(commit|end)\y')`

// commitWatch bounds how long a transaction is asked about every
// BusyInterval from when commitsUnderWay first found it committing (or
// gone), instead of being backed off from (a quarter of its open time, up
// to maxWait): past it the COMMIT is stuck (a lock a deferred trigger
// waits for, a synchronous standby gone, a prepared transaction), not
// slow, and asking every BusyInterval would cost the server for nothing.
// While any is stuck so, none is watched (flush): the next COMMITs are
// likely stuck behind the same cause.
const commitWatch = time.Second

// commitsUnderWay reports whether any of xids (transactions open longer
// than openRetries questions, and not yet seen committing for
// commitWatch) is running its COMMIT or has ended since the question, and
// notes when each was first seen so. A COMMIT that waits for a slow WAL
// flush (a checkpoint's writes, a disk shared with others) takes d, and
// backing off from it announced it up to d/4 (at most maxWait) after it
// ended: with COMMITs of up to 400 ms at 20 a second, the p99 of COMMIT to
// first request was 17 to 20 ms, now under 5 (docs/benchmarks.md, "Slow WAL
// flushes"). One that ended between the question and this read would
// otherwise look idle, and be backed off from. It runs in run's goroutine
// only (as flush does): n.open is not changed under it. An error is
// answered no (the Notifier backs off, as it would have) and logged once
// until a read works again.
func (n *Notifier) commitsUnderWay(xids []int64) bool {
	if len(xids) == 0 {
		return false
	}
	// One seen committing stays so until it ends (flush forgets it then):
	// no read needed while its second runs.
	n.mu.Lock()
	for _, x := range xids {
		if o := n.open[x]; !o.committing.IsZero() && !o.gone {
			n.mu.Unlock()
			return true
		}
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), n.questionTimeout)
	defer cancel()
	rows, err := n.db.Query(ctx, commitsUnderWaySQL, xids)
	type seen struct {
		x    int64
		gone bool
	}
	var found []seen
	if err == nil {
		found, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (seen, error) {
			var f seen
			return f, r.Scan(&f.x, &f.gone)
		})
	}
	if err != nil {
		if !n.activityFailed.Swap(true) {
			n.log.Warn("cannot read pg_stat_activity: a COMMIT slowed by its WAL flush is announced up to a quarter of its time late", "error", err)
		}
		return false
	}
	n.activityFailed.Store(false)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, f := range found {
		if o, ok := n.open[f.x]; ok && o.committing.IsZero() {
			o.committing, o.gone = now, f.gone
			n.open[f.x] = o
		}
	}
	return len(found) > 0
}
