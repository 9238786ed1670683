package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PurgeResult counts what one maintenance run deleted.
type PurgeResult struct {
	// InboxKeys, DeliveredMessages and Failures count the rows deleted:
	// expired inbox events, delivered messages past the retention, old
	// rows of the failure log.
	InboxKeys, DeliveredMessages, Failures int64
	// OrderingKeys counts rows of outbox_keys deleted because no message
	// names their key any more.
	OrderingKeys int64
}

// Purge deletes expired inbox keys, delivered messages older than the
// retention (with their attempts), old rows of the inbox failure log and
// ordering keys no message names any more, in batches of Maintenance.BatchSize,
// resting between batches (Maintenance.Duty), until none is left or budget
// runs out. A River job runs it every Maintenance.Interval (river.go);
// operators may call it too.
func (d *Dispatcher) Purge(ctx context.Context, budget time.Duration) (PurgeResult, error) {
	var res PurgeResult
	deadline := time.Now().Add(budget)
	batch, duty := d.cfg.Maintenance.BatchSize, d.cfg.Maintenance.Duty
	for _, step := range []struct {
		query     string
		args      []any
		count     *int64
		indexPlan bool // run under indexPlanSQL
	}{
		{d.q.purgeInbox, []any{batch}, &res.InboxKeys, false},
		{d.q.purgeDelivered, []any{batch, d.cfg.Maintenance.DeliveredRetention.Milliseconds()}, &res.DeliveredMessages, true},
		{d.q.purgeFailures, []any{batch, d.cfg.Maintenance.FailureRetention.Milliseconds()}, &res.Failures, false},
	} {
		for time.Now().Before(deadline) {
			start := time.Now()
			tag, err := d.purgeBatch(ctx, step.query, step.indexPlan, step.args)
			if err != nil {
				return res, fmt.Errorf("worker: purge: %w", err)
			}
			*step.count += tag.RowsAffected()
			if tag.RowsAffected() < int64(batch) {
				break
			}
			// Rest in proportion to the work, leaving the server to receipts.
			took := time.Since(start)
			if !sleep(ctx, time.Duration(float64(took)*(1-duty)/duty)) {
				return res, ctx.Err()
			}
		}
	}
	// Ordering keys last: the delivered messages that named them are gone
	// by now. A batch at a time in key order, from where the last run
	// stopped (so a table larger than one budget is still covered), to the
	// end of the table, then from the start again next time.
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	for time.Now().Before(deadline) {
		start := time.Now()
		var last string
		var n int64
		if err := d.pool.QueryRow(ctx, d.q.purgeKeys, batch, d.keysCursor).Scan(&last, &n); err != nil {
			return res, fmt.Errorf("worker: purge ordering keys: %w", err)
		}
		res.OrderingKeys += n
		d.keysCursor = last // "" at the end: wrap around
		if last == "" {
			break
		}
		if !sleep(ctx, time.Duration(float64(time.Since(start))*(1-duty)/duty)) {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// purgeBatch runs one purge statement; with indexPlan, in a transaction
// that first runs indexPlanSQL, so that the plan is the index walk whatever
// the table's statistics say.
func (d *Dispatcher) purgeBatch(ctx context.Context, query string, indexPlan bool, args []any) (pgconn.CommandTag, error) {
	if !indexPlan {
		return d.pool.Exec(ctx, query, args...)
	}
	tx, err := beginIndexPlan(ctx, d.pool)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, query, args...)
	if err != nil {
		return tag, err
	}
	return tag, tx.Commit(ctx)
}

// beginIndexPlan begins a transaction whose statements are planned under
// indexPlanSQL.
func beginIndexPlan(ctx context.Context, pool *pgxpool.Pool) (pgx.Tx, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, indexPlanSQL); err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}
