package worker

import (
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// listenProbeChannel carries the probes of every dispatcher's listening
// connection (each tells its own by a nonce). It is not the outbox channel:
// a dispatcher of an earlier version wakes every lane on a payload it
// cannot read.
const listenProbeChannel = "outboxd_listen_probe"

// listenProbeWait bounds how long a listening connection waits for its
// probe before the warning; listenProbeEvery is how often it probes again
// while connected (docs/operations.md, "Connection poolers").
const (
	listenProbeWait  = 10 * time.Second
	listenProbeEvery = 5 * time.Minute
)

// probe is one listening connection's current probe, shared by its loop
// (arrived) and its prober (next).
type probe struct {
	mu    sync.Mutex
	nonce string
	got   chan struct{} // closed when the nonce arrives; nil once closed
}

// next starts a probe with a new nonce.
func (p *probe) next() (nonce string, got <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nonce, p.got = rand.Text(), make(chan struct{})
	return p.nonce, p.got
}

// arrived takes a payload of the probe channel: the current probe's
// nonce closes its channel, anything else (another process's probe, an
// earlier one's) is ignored.
func (p *probe) arrived(payload string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got != nil && payload == p.nonce {
		close(p.got)
		p.got = nil
	}
}

// probeListener sends a nonce to listenProbeChannel from the pool, the way
// producers' commits are announced, and warns when the listening
// connection has not received it within d.probeWait; it probes again
// every d.probeEvery until ctx (the connection's life) ends. Through
// PgBouncer's transaction pooling, LISTEN lands on a server connection
// that forwards nothing once the transaction ends, and every wake-up is
// lost with no error (an operator's trial: delivery fell back to the
// sweep, /readyz said ready).
func (d *Dispatcher) probeListener(ctx context.Context, p *probe) {
	missing := false
	for {
		nonce, got := p.next()
		if !d.sendProbe(ctx, nonce) {
			return
		}
		sent := time.Now()
		arrived := closedWithin(ctx, got, d.probeWait)
		if ctx.Err() != nil {
			return // the connection ended: nothing to say about it
		}
		switch {
		case arrived && missing:
			d.log.Info("notifications from other connections reach this dispatcher's listening connection again")
			missing = false
		case !arrived:
			missing = true
			d.log.Warn("a notification sent from another connection did not reach this dispatcher's listening connection: commits wake nothing, messages wait for the lanes' sweeps; is a connection pooler in transaction mode (PgBouncer) between it and PostgreSQL (or was this process frozen meanwhile)? Through such a pooler the check that no other process runs with this dispatcher's id, a session lock, fails too. Connect the dispatcher directly, or through session pooling",
				"waited", d.probeWait, "sweep_interval", d.cfg.SweepInterval, "probed_again_in", d.probeEvery)
		}
		d.cfg.Metrics.listenProbe(!arrived)
		d.probeDone(arrived)
		next := time.Now().Add(d.probeEvery)
		if !arrived && closedWithin(ctx, got, d.probeEvery) {
			// Late, not lost: said at once rather than at the next probe.
			d.cfg.Metrics.listenProbe(false)
			d.log.Info("the listening connection's probe arrived late: notifications reach it, slowly", "after", time.Since(sent).Round(time.Millisecond))
			missing = false
		}
		if !sleep(ctx, time.Until(next)) {
			return
		}
	}
}

// closedWithin reports whether got closed within d, and before ctx ended.
func closedWithin(ctx context.Context, got <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-got:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

// sendProbe sends nonce, trying again a second after each try that fails
// (each waits up to 5 s for the pool), until it goes: behind a
// transaction pooler the listening connection never reconnects, so a
// probe lost at its start would leave it unchecked for probeEvery. Tries
// that keep failing for probeWait are warned about once, and their end
// said: the check cannot be made meanwhile (pg_notify refused, the pool
// stuck). It reports false when ctx ended first.
func (d *Dispatcher) sendProbe(ctx context.Context, nonce string) bool {
	first, warned := time.Now(), false
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := d.pool.Exec(sctx, "SELECT pg_notify($1, $2)", d.probeSendTo, nonce)
		cancel()
		if err == nil {
			if warned {
				d.log.Info("the listening connection's probe is sent again", "failed_for", time.Since(first).Round(time.Second))
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !warned && time.Since(first) >= d.probeWait {
			warned = true
			d.log.Warn("the listening connection's probe cannot be sent, so whether notifications reach it is unchecked; tried again a second after each failure", "failing_for", time.Since(first).Round(time.Second), "error", err)
		} else {
			d.log.Debug("the listening connection's probe could not be sent; tried again in 1 s", "error", err)
		}
		if !sleep(ctx, time.Second) {
			return false
		}
	}
}

func (d *Dispatcher) probeDone(arrived bool) {
	if d.probed != nil {
		d.probed(arrived)
	}
}
