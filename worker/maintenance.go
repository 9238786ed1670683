package worker

import (
	"context"
	"fmt"
	"time"
)

// PurgeResult counts what one maintenance run deleted.
type PurgeResult struct {
	InboxKeys, DeliveredMessages, Failures int64
	// OrderingKeys counts rows of outbox_keys deleted because no message
	// names their key any more.
	OrderingKeys int64
}

// Purge deletes expired inbox keys, delivered messages older than the
// retention (with their attempts), old rows of the inbox failure log and
// ordering keys no message names any more, in batches of Maintenance.BatchSize,
// resting between batches (Maintenance.Duty), until none is left or budget
// runs out. River's leader runs it every
// Maintenance.Interval; operators may call it too.
func (d *Dispatcher) Purge(ctx context.Context, budget time.Duration) (PurgeResult, error) {
	var res PurgeResult
	deadline := time.Now().Add(budget)
	batch, duty := d.cfg.Maintenance.BatchSize, d.cfg.Maintenance.Duty
	for _, step := range []struct {
		query string
		args  []any
		count *int64
	}{
		{d.q.purgeInbox, []any{batch}, &res.InboxKeys},
		{d.q.purgeDelivered, []any{batch, d.cfg.Maintenance.DeliveredRetention.Milliseconds()}, &res.DeliveredMessages},
		{d.q.purgeFailures, []any{batch, d.cfg.Maintenance.FailureRetention.Milliseconds()}, &res.Failures},
	} {
		for time.Now().Before(deadline) {
			start := time.Now()
			tag, err := d.pool.Exec(ctx, step.query, step.args...)
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
	// by now. One pass over the keys table, a batch at a time.
	for after := ""; time.Now().Before(deadline); {
		start := time.Now()
		var last string
		var n int64
		if err := d.pool.QueryRow(ctx, d.q.purgeKeys, batch, after).Scan(&last, &n); err != nil {
			return res, fmt.Errorf("worker: purge ordering keys: %w", err)
		}
		res.OrderingKeys += n
		if last == "" {
			break
		}
		after = last
		if !sleep(ctx, time.Duration(float64(time.Since(start))*(1-duty)/duty)) {
			return res, ctx.Err()
		}
	}
	return res, nil
}
