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
	found := map[string]Backlog{}
	err := pendingsql.InTx(ctx, d.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, d.q.unserved, pendingsql.Budget)
		if err != nil {
			return err
		}
		var (
			name string
			b    Backlog
		)
		_, err = pgx.ForEachRow(rows, []any{&name, &b.Pending, &b.Capped}, func() error { found[name] = b; return nil })
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
	for name, b := range found {
		_, known := prev[name]
		if ok, _ := d.logs.Allow(name + "/unserved"); !ok && known {
			continue
		}
		if _, own := d.cfg.Destinations[name]; own {
			d.log.Warn("no live dispatcher serves this destination: this one has it in its config, but its heartbeat is out of date (its lane balancing fails: see those lines); its messages wait",
				"destination", name, "pending", b.Pending, "pending_at_least", b.Capped)
			continue
		}
		d.log.Warn("no live dispatcher serves this destination; its messages wait until one does (add it to a dispatcher's config)",
			"destination", name, "pending", b.Pending, "pending_at_least", b.Capped)
	}
	return nil
}

// Backlog is a destination's pending messages as a check counted them,
// within a budget of rows read (pendingsql.Budget, 64,000 shared by the
// destinations and lanes): past its share the count stops.
type Backlog struct {
	Pending int64 // messages counted
	Capped  bool  // the count stopped at its share: there are at least Pending
}
