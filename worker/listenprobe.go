package worker

import (
	"context"
	"crypto/rand"
	"time"
)

// listenProbeChannel carries the probes of every dispatcher's listening
// connection (each tells its own by a nonce). It is not the outbox channel:
// a dispatcher of an earlier version wakes every lane on a payload it
// cannot read.
const listenProbeChannel = "outboxd_listen_probe"

// listenProbeWait bounds how long a listening connection waits for its
// probe before the warning (docs/operations.md, "Connection poolers").
const listenProbeWait = 10 * time.Second

// probeListener sends nonce to listenProbeChannel from the pool, the way
// producers' commits are announced, and warns when the listening
// connection (whose loop closes got on seeing it) has not received it
// within d.probeWait: through PgBouncer's transaction pooling, LISTEN lands
// on a server connection that forwards nothing once the transaction ends,
// and every wake-up is lost with no error (an operator's trial: delivery
// fell back to the sweep, /readyz said ready). A probe that cannot be
// sent (the pool busy, the database away) is sent again every second
// until it goes: behind such a pooler the listening connection never
// reconnects, so its first probe may be its only one.
func (d *Dispatcher) probeListener(ctx context.Context, nonce string, got <-chan struct{}) {
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := d.pool.Exec(sctx, "SELECT pg_notify($1, $2)", d.probeSendTo, nonce)
		cancel()
		if err == nil {
			break
		}
		d.log.Debug("the listening connection's probe could not be sent; sent again in 1 s", "error", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
	t := time.NewTimer(d.probeWait)
	defer t.Stop()
	select {
	case <-got:
		if d.probed != nil {
			d.probed(true)
		}
	case <-ctx.Done():
	case <-t.C:
		d.log.Warn("a notification sent from another connection did not reach this dispatcher's listening connection: commits wake nothing, messages wait for the lanes' sweeps (sweep_interval); is a connection pooler in transaction mode (PgBouncer) between it and PostgreSQL? connect the dispatcher directly, or through session pooling",
			"waited", d.probeWait)
		if d.probed != nil {
			d.probed(false)
		}
	}
}

// probeNonce tells this connection's probe from another's.
func probeNonce() string { return rand.Text() }
