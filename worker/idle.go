package worker

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// An idle lane's runner used to claim every sweep: one destination's 32
// lanes made 32 claims a SweepInterval with nothing to send (44-48
// transactions a second at the defaults, 356 at a 100 ms sweep). A lane
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

// probeIdleLanes runs a round every SweepInterval while lanes are parked.
func (d *Dispatcher) probeIdleLanes(ctx context.Context) {
	t := time.NewTicker(d.cfg.SweepInterval)
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
		round := d.idle.take()
		if round == nil {
			continue
		}
		round.at = d.mono()
		round.busy, round.err = d.probeLanes(ctx, round.lanes)
		if round.err == nil {
			d.cfg.Metrics.probedIdle(round.lanes)
		}
		if ctx.Err() == nil {
			// Its lanes claim instead, and report what they meet; a probe
			// failing alone (a grant) would otherwise only cost claims.
			d.health.report("probing idle lanes", round.err)
		}
		close(round.done)
	}
}

// probeLanes returns the lanes of lanes that a claim may find something in.
func (d *Dispatcher) probeLanes(ctx context.Context, lanes []Lane) (map[Lane]bool, error) {
	dests, nums := make([]string, 0, len(lanes)), make([]int16, 0, len(lanes))
	for _, l := range lanes {
		dests, nums = append(dests, l.Destination), append(nums, int16(l.Lane))
	}
	rows, err := d.pool.Query(ctx, d.q.idleProbe, dests, nums)
	if err != nil {
		return nil, err
	}
	busy := map[Lane]bool{}
	var l Lane
	var lane int16
	_, err = pgx.ForEachRow(rows, []any{&l.Destination, &lane}, func() error {
		l.Lane = int(lane)
		busy[l] = true
		return nil
	})
	return busy, err
}

// mayPark: after an empty claim, whether the runner parks rather than
// claim at its sweep. Only an empty walk says the lane held nothing due;
// a straggler's messages are pending, and a wake-up that did not walk
// (walk.skipped) is owed one.
func (r *laneRunner) mayPark(walked bool) bool {
	return walked && len(r.stragglers) == 0 && !r.walk.skipped
}

// park waits for the runner's next idle round (see above), a wake-up, a
// retry it recorded falling due, or the end of its run; it tells whether
// the runner goes on without a claim: its lane was found empty again
// (noted as an empty walk then), or the run is ending. Otherwise it
// claims, and parks again only after another empty walk.
func (r *laneRunner) park() bool {
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
			// Noted as an empty walk then, of the time the last one took
			// (an empty walk too: parking comes after one).
			r.walk.lastAt = round.at
			r.forgetDue(round.at)
			r.probedEmpty = true
			return true
		}
		if r.d.runCtx.Err() != nil {
			return true // the dispatcher is stopping: its runners are told next
		}
		// Empty at the last round, busy at this one: a commit since, whose
		// wake-up did not come (or has not yet). Only a walk finds a new
		// key's message, and it costs what came since.
		r.walk.next = r.walk.next || (round.err == nil && r.probedEmpty)
	case <-r.wakeCh:
		r.walk.woken = true
	case <-retry:
	case <-r.stopCtx.Done():
		return true
	case <-r.leaseCtx.Done():
		return true
	}
	r.parked, r.probedEmpty = false, false
	return false
}
