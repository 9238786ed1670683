package worker

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pendingsql"
)

// checkUnserved looks for destinations with pending messages that no live
// dispatcher serves: their messages wait (none is dead-lettered for it), and
// operators learn of it from a log line, the outboxd_unserved_pending_messages
// metric and Unserved (which outboxd serve shows in /readyz).
func (d *Dispatcher) checkUnserved(ctx context.Context) error {
	found := map[string]int64{}
	err := pendingsql.InTx(ctx, d.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, d.q.unserved, pendingsql.Budget)
		if err != nil {
			return err
		}
		var (
			name string
			n    int64
		)
		_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { found[name] = n; return nil })
		return err
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	prev := d.unserved
	d.unserved = found
	d.mu.Unlock()
	d.cfg.Metrics.setUnserved(prev, found)
	for name, n := range found {
		_, known := prev[name]
		if ok, _ := d.logs.allow(name + "/unserved"); ok || !known {
			d.log.Warn("no live dispatcher serves this destination; its messages wait until one does (add it to a dispatcher's config)",
				"destination", name, "pending", n)
		}
	}
	return nil
}
