package worker

import (
	"context"
	"fmt"
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
		// A session that listened listenSteady or more was no flapping:
		// the next drop waits the least again (an operator's trial found
		// every drop from a process's seventh on costing 5 s of commits
		// found only by the sweep, and of an unready /readyz).
		if at := d.listeningSince.Swap(0); d.listening.Swap(false) && d.mono()-time.Duration(at) >= d.listenSteady {
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		d.health.report(opListen, err)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listenSteady is how long a session must have listened for its drop to
// count as no flapping: the longest wait, so that a connection dropped
// again and again, whose every reconnect wakes (and walks) every lane,
// still does that at most once per 5 s.
const listenSteady = 5 * time.Second

func (d *Dispatcher) listenOnce(ctx context.Context, channel string) error {
	pcfg := d.pool.Config()
	cfg := pcfg.ConnConfig.Copy()
	// The pool's hook runs for its connections only: one that sets a
	// rotating password (an IAM token) would leave this one unable to
	// log in.
	if pcfg.BeforeConnect != nil {
		if err := pcfg.BeforeConnect(ctx, cfg); err != nil {
			return fmt.Errorf("the pool's BeforeConnect: %w", err)
		}
		// New refuses a pool with a handler of its own; one the hook sets
		// would take every notification from this connection too.
		cfg.OnNotification = nil
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{channel, listenProbeChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	if err := d.claimID(ctx, conn); err != nil {
		return err
	}
	d.listeningSince.Store(int64(d.mono()))
	d.listening.Store(true)
	d.health.report(opListen, nil)
	d.wakeAll()
	pctx, stopProbe := context.WithCancel(ctx)
	p, probing := &probe{}, make(chan struct{})
	go func() {
		defer close(probing)
		d.probeListener(pctx, p)
	}()
	defer func() {
		stopProbe()
		<-probing // nothing of this connection's is said after it
		// Its probe's result goes with it: a listener that cannot
		// reconnect is /readyz's and the health log's to report.
		d.cfg.Metrics.listenProbe(false)
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == listenProbeChannel {
			p.arrived(n.Payload)
			continue
		}
		d.wakeFor(n.Payload)
	}
}

// idLockSQL takes, for the listening session's life, an advisory lock
// named after the schema and the dispatcher's id: a second live process
// with the same id does not get it. (A restart under the same id gets it
// once the old process's session is gone, which it is when that process
// is: a frozen one still holds it.)
const idLockSQL = `SELECT pg_try_advisory_lock(hashtextextended('outboxd dispatcher ' || $1 || ' ' || $2, 0))`

// idHolderSQL describes the session holding that lock: the warning names
// it, so that an operator can tell another process from this one's own
// session left over by a network partition (the server ends it once it
// notices the client gone).
const idHolderSQL = `
SELECT coalesce(string_agg(format('pid %s, client %s, %s, connected %s ago', a.pid, coalesce(host(a.client_addr), 'local'),
       coalesce(nullif(a.application_name, ''), 'no application_name'), date_trunc('second', now() - a.backend_start)), '; '), 'unknown')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (l.classid::bigint << 32 | l.objid::bigint) = hashtextextended('outboxd dispatcher ' || $1 || ' ' || $2, 0)`

// claimID warns when another live process runs under this dispatcher's
// id: their leases, heartbeats and attempt records mix (a trial's third
// process, started with an id in use, went unnoticed).
func (d *Dispatcher) claimID(ctx context.Context, conn *pgx.Conn) error {
	var mine bool
	if err := conn.QueryRow(ctx, idLockSQL, d.cfg.Schema, d.cfg.ID).Scan(&mine); err != nil {
		return err
	}
	if !mine {
		var holder string
		if err := conn.QueryRow(ctx, idHolderSQL, d.cfg.Schema, d.cfg.ID).Scan(&holder); err != nil {
			holder = "unknown: " + err.Error()
		}
		d.log.Warn("another live process runs with this dispatcher id (or one frozen, or this one's session from before a network partition, until the server ends it; or a pooler's server connection: PgBouncer's transaction pooling keeps session locks after the process is gone, until it closes that connection; its RECONNECT command closes them): give each process an id of its own (--id); their leases, heartbeats and attempt records mix",
			"holder", holder)
	}
	return nil
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
