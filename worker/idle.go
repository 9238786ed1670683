package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// An idle lane's runner used to claim every sweep: one destination's 32
// lanes made 32 claims a SweepInterval with nothing to send (42-48
// transactions a second at the defaults, 319-356 at a 100 ms sweep). A lane
// whose last claim walked and found nothing now parks instead: it waits
// for a wake-up, for a retry it recorded to fall due, or for the
// dispatcher's next idle probe, one statement every SweepInterval for
// all its parked lanes, which tells which of them hold a keyed pending
// message or a due unkeyed one (idleProbeSQL). What a claim of a lane
// could find, the probe sees, so a probe that finds the lane empty
// stands for an empty walk begun when the probe began; one that finds
// something, or fails, sends the runner to claim as it did before. A
// commit whose wake-up is lost is so still found within SweepInterval of
// the commit: by the first probe begun after it.

// idleRound is one probe of the lanes parked since the last: done closes
// once busy and err are set.
type idleRound struct {
	lanes []Lane // each once
	in    map[Lane]bool
	done  chan struct{}
	at    time.Duration // d.mono() before the statement: its snapshot is later
	busy  map[Lane]bool
	err   error
}

// idleProbes gathers the parked lanes for the next round.
type idleProbes struct {
	mu   sync.Mutex
	next *idleRound
}

// join adds lane to the next round, which begins after join returns.
func (p *idleProbes) join(lane Lane) *idleRound {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == nil {
		p.next = &idleRound{done: make(chan struct{}), in: map[Lane]bool{}}
	}
	// A runner woken from a round parks again in the same round.
	if !p.next.in[lane] {
		p.next.in[lane] = true
		p.next.lanes = append(p.next.lanes, lane)
	}
	return p.next
}

// take hands the next round to the prober (nil if nobody is parked).
func (p *idleProbes) take() *idleRound {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.next
	p.next = nil
	return r
}

// probeIdleLanes runs a round every SweepInterval while lanes are parked,
// but never sooner than half a SweepInterval after the last one answered:
// a round slower than a sweep would otherwise be followed at once by one
// that the lanes it released had not joined yet, and they would wait a
// whole sweep more.
func (d *Dispatcher) probeIdleLanes(ctx context.Context) {
	every := d.cfg.SweepInterval
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if round := d.idle.take(); round != nil {
				round.err = ctx.Err()
				close(round.done)
			}
			return
		case <-t.C:
		}
		start := d.mono()
		if round := d.idle.take(); round != nil {
			round.at = start
			round.busy, round.err = d.probeLanes(ctx, round.lanes)
			if round.err == nil {
				d.cfg.Metrics.probedIdle(round.lanes)
			}
			if ctx.Err() == nil {
				// Its lanes claim instead, and report what they meet; a
				// probe failing alone (a grant) would otherwise only cost
				// claims.
				d.health.report(opIdleProbe, round.err)
			}
			close(round.done)
		}
		t.Reset(max(every-(d.mono()-start), every/2))
	}
}

// probeLanes returns the lanes of lanes that a claim may find something
// in. It gives up after a sweep (at least a second): a connection that
// hangs (half open after a failover: its statement, or the ping pgxpool
// sends on one idle for a second) must not keep every parked lane from
// looking for unannounced commits; they claim instead. It waits longer
// for a connection while every one of the pool's is in use: on a pool
// busy with claims, failing would send every parked lane to claim too.
func (d *Dispatcher) probeLanes(ctx context.Context, lanes []Lane) (map[Lane]bool, error) {
	limit := max(d.cfg.SweepInterval, time.Second)
	conn, err := d.probeConn(ctx, limit)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	dests, nums := make([]string, 0, len(lanes)), make([]int16, 0, len(lanes))
	for _, l := range lanes {
		dests, nums = append(dests, l.Destination), append(nums, int16(l.Lane))
	}
	busy := map[Lane]bool{}
	err = queryGeneric(ctx, conn, func(rows pgx.Rows) error {
		var l Lane
		var lane int16
		_, err := pgx.ForEachRow(rows, []any{&l.Destination, &lane}, func() error {
			l.Lane = int(lane)
			busy[l] = true
			return nil
		})
		return err
	}, d.q.idleProbe, dests, nums)
	return busy, err
}

// probeConn acquires a connection within limit, tried again while the
// pool has every connection in use.
func (d *Dispatcher) probeConn(ctx context.Context, limit time.Duration) (*pgxpool.Conn, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, limit)
		conn, err := d.pool.Acquire(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return conn, err
		}
		if s := d.pool.Stat(); s.AcquiredConns() < s.MaxConns() {
			return nil, err
		}
	}
}

// mayPark: after an empty claim, whether the runner parks rather than
// claim at its sweep. Only an empty walk says the lane held nothing due
// (and it cleared walk.skipped, the walk a wake-up was owed); a
// straggler's messages are pending.
func (r *laneRunner) mayPark(walked bool) bool {
	return walked && len(r.stragglers) == 0
}

// park waits for the runner's next idle round (see above), a wake-up, a
// retry it recorded falling due, or the end of its run. A round that finds
// the lane empty is noted as an empty walk then, and the runner stays
// parked; anything else unparks it, and the run loop's checks (a pause,
// the schema, the lease) come before its claim.
func (r *laneRunner) park() {
	round := r.d.idle.join(r.key)
	var retry <-chan time.Time
	if len(r.retries) > 0 {
		t := time.NewTimer(max(r.retries[0]-r.d.mono(), 0))
		defer t.Stop()
		retry = t.C
	}
	select {
	case <-round.done:
		if round.err == nil && !round.busy[r.key] {
			r.walk.lastAt = round.at
			r.forgetDue(round.at)
			r.probedEmpty = true
			return
		}
		if r.d.runCtx.Err() != nil {
			return // the dispatcher is stopping: its runners are told next
		}
		// Empty at the round before, busy (or unknown) at this one: maybe
		// a commit since, whose wake-up did not come. Only a walk finds a
		// new key's message, and it costs what came since; its turn by
		// the pace could be up to 30 s away (the pace counts the lane's
		// last real walks, maybe over the backlog it drained). A lane
		// found busy at its first round (keyed messages waiting, not due)
		// keeps its pace.
		r.walk.next = r.walk.next || r.probedEmpty
	case <-r.wakeCh:
		r.walk.woken = true
	case <-retry:
	case <-r.stopCtx.Done():
		return
	case <-r.leaseCtx.Done():
		return
	}
	r.parked, r.probedEmpty = false, false
}
