package worker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/wakeup"
)

// listen holds a connection that LISTENs to the outbox channel and wakes the
// lane each notification names. On reconnect it wakes every lane, since
// notifications sent while it was away are lost.
func (d *Dispatcher) listen(ctx context.Context) {
	channel := dbschema.NotifyChannel(d.cfg.Schema)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listenOnce(ctx, channel)
		d.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		d.health.report("listening for commits", err)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (d *Dispatcher) listenOnce(ctx context.Context, channel string) error {
	conn, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	d.listening.Store(true)
	d.health.report("listening for commits", nil)
	d.wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		d.wakeFor(n.Payload)
	}
}

// wakeFor wakes the lanes a notification names, of the destinations it
// names (internal/wakeup has the format); anything it cannot read wakes
// every lane. One that names no destination (the trigger's, for a requeue
// or a zero backoff; an earlier version's enqueue) makes them walk even
// while their wake-ups are paced (walk.go): an operator who requeues dead
// letters once the destination is back expects them sent at once.
func (d *Dispatcher) wakeFor(payload string) {
	lanes, dests := wakeup.Parse(payload)
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, r := range d.runners {
		if lanes&(1<<k.Lane) != 0 && dests&r.destBit != 0 {
			if dests == wakeup.All {
				r.mustWalkNext.Store(true)
			}
			r.wake()
		}
	}
}
