package worker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/dbschema"
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

// wakeFor wakes the lanes a notification names: one lane ("7", from an
// enqueue or the trigger), a bitmask of lanes ("m2147483649", from
// outbox.Notifier), or anything else: every lane.
func (d *Dispatcher) wakeFor(payload string) {
	if mask, ok := strings.CutPrefix(payload, "m"); ok {
		if m, err := strconv.ParseUint(mask, 10, 64); err == nil {
			for lane := range numLanes {
				if m&(1<<lane) != 0 {
					d.wake(lane)
				}
			}
			return
		}
	}
	if lane, err := strconv.Atoi(payload); err == nil {
		d.wake(lane)
		return
	}
	d.wakeAll()
}
