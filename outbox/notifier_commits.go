package outbox

import (
	"context"
	"time"
)

// commitsUnderWaySQL counts which of the transactions $1 are running their
// COMMIT: their session is active in a COMMIT (or END) statement, waiting
// for the WAL flush, a standby's answer, or a lock a deferred trigger
// takes. A session idle in its transaction, or running its own
// statements, is not committing. PostgreSQL shows another role's
// session's state and statement only to its own role, a superuser, or
// pg_read_all_stats: without those, no session is found committing and
// the Notifier backs off as before.
const commitsUnderWaySQL = `
SELECT count(*) FROM pg_stat_get_activity(NULL) a
WHERE a.backend_xid = ANY (SELECT xid(x::text::xid8) FROM unnest($1::bigint[]) AS u(x))
  AND a.state = 'active' AND a.query ~* '^\s*(commit|end)\y'`

// commitWatch bounds how long a transaction seen running its COMMIT is
// asked about every BusyInterval instead of being backed off from (a
// quarter of its open time, up to maxWait): past it the COMMIT is stuck
// (a lock a deferred trigger waits for, a synchronous standby gone), not
// slow, and asking every BusyInterval would cost the server for nothing.
const commitWatch = time.Second

// commitsUnderWay reports whether any of xids (transactions open longer
// than openRetries questions, and for less than commitWatch) is running
// its COMMIT. A COMMIT that waits for a slow WAL flush (a checkpoint's
// writes, a disk shared with others) takes d, and backing off from it
// announced it up to d/4 (at most maxWait) after it ended: with COMMITs
// of up to 400 ms at 20 a second, the p99 of COMMIT to first request was
// 17 ms, now 6 to 7 (docs/benchmarks.md, "Slow WAL flushes"). An error
// is answered no: the Notifier backs off, as it would have.
func (n *Notifier) commitsUnderWay(xids []int64) bool {
	if len(xids) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.questionTimeout)
	defer cancel()
	var committing int64
	if err := n.db.QueryRow(ctx, commitsUnderWaySQL, xids).Scan(&committing); err != nil {
		return false
	}
	return committing > 0
}
