package worker

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// genericPlanSQL makes the statement after it in a batch use its generic
// plan. pgx prepares a dispatcher's statements once per connection, and
// PostgreSQL plans each execution afresh for the first five, then keeps
// the generic plan only if its estimate beats theirs: on a table whose
// size changed since (a drain, a bulk enqueue) a connection could plan
// the claim and the recording at every execution for good. Planning a
// claim costs 0.7 to 1 ms, about what running it costs, so at 300
// messages a second planning took over a third of PostgreSQL's CPU
// (docs/benchmarks.md, "Plans made at every claim"). The generic plans
// are the ones TestHotPathPlansUseIndexesWithoutStatistics checks.
const genericPlanSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`

// recordAsyncSQL is genericPlanSQL for a recording whose commit need not
// wait for its WAL flush (synchronous_commit off, for its transaction
// only), recordSyncSQL for one that must: see laneRunner.record for which.
// The first turns the setting off only where the session would commit
// with the default (on) and the server names no synchronous standby: a
// setting an operator chose (local, remote_write, off) is kept, and with
// synchronous replication a recording at the default still waits for the
// standby, so that a failover re-sends no more than before. PostgreSQL
// cannot tell an on set explicitly from the default: both count as the
// default. The second raises off (a role's or database's default) to on,
// and local too where a synchronous standby is named: a key's next
// message is sent once its recording returns, which must then survive a
// crash and a failover to that standby
// (TestRecordingsWaitForASynchronousStandby).
const (
	recordAsyncSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
       set_config('synchronous_commit',
                  CASE WHEN current_setting('synchronous_commit') = 'on'
                        AND current_setting('synchronous_standby_names') = ''
                       THEN 'off' ELSE current_setting('synchronous_commit') END, true)`
	recordSyncSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
       set_config('synchronous_commit',
                  CASE WHEN current_setting('synchronous_commit') = 'off'
                         OR (current_setting('synchronous_commit') = 'local'
                             AND current_setting('synchronous_standby_names') <> '')
                       THEN 'on' ELSE current_setting('synchronous_commit') END, true)`
)

// batcher runs a batch: a pool, or one of its connections outside any
// transaction (inside one, the setting would last until it ends; only
// TestClaimWritesNothing sends a batch so, to see its transaction).
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// queryGeneric runs sql after genericPlanSQL in one round trip (once pgx
// has prepared both on the connection), and each on its rows. A batch is
// one transaction (one Sync, or one simple query), so the setting ends
// with it: the pool's connections keep their own for the application's
// statements, and a pooler in transaction mode runs both on one server
// connection. It matters in pgx's default query modes, which prepare the
// statements once per connection; in the exec modes every execution is
// planned anyway, and the simple protocol sends no parameters.
func queryGeneric(ctx context.Context, db batcher, each func(pgx.Rows) error, sql string, args ...any) error {
	return queryAfter(ctx, db, genericPlanSQL, each, sql, args...)
}

// queryAfter runs sql after settings (genericPlanSQL, recordAsyncSQL or
// recordSyncSQL) in one batch, as queryGeneric.
func queryAfter(ctx context.Context, db batcher, settings string, each func(pgx.Rows) error, sql string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(settings)
	b.Queue(sql, args...).Query(each)
	return db.SendBatch(ctx, b).Close()
}
