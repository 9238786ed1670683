package worker

import (
	"context"
	"fmt"
	"time"
)

// PurgeResult counts what one maintenance run deleted.
type PurgeResult struct {
	InboxKeys, DeliveredMessages int64
}

// Purge deletes expired inbox keys and delivered messages older than the
// retention (with their attempts), in batches of Maintenance.BatchSize, until
// none is left or budget runs out. River's leader runs it every
// Maintenance.Interval; operators may call it too.
func (d *Dispatcher) Purge(ctx context.Context, budget time.Duration) (PurgeResult, error) {
	var res PurgeResult
	deadline := time.Now().Add(budget)
	batch := d.cfg.Maintenance.BatchSize
	for _, step := range []struct {
		query string
		args  []any
		count *int64
	}{
		{d.q.purgeInbox, []any{batch}, &res.InboxKeys},
		{d.q.purgeDelivered, []any{batch, d.cfg.Maintenance.DeliveredRetention.Milliseconds()}, &res.DeliveredMessages},
	} {
		for time.Now().Before(deadline) {
			tag, err := d.pool.Exec(ctx, step.query, step.args...)
			if err != nil {
				return res, fmt.Errorf("worker: purge: %w", err)
			}
			*step.count += tag.RowsAffected()
			if tag.RowsAffected() < int64(batch) {
				break
			}
		}
	}
	return res, nil
}
