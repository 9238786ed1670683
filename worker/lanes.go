package worker

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// manageLanes heartbeats, renews the leases this dispatcher holds, and takes
// or gives back lanes so that every live dispatcher holds its fair share.
// On the way out it stops the runners and releases their lanes.
func (d *Dispatcher) manageLanes(ctx context.Context) {
	defer d.releaseAll()
	for {
		if err := d.balance(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("lane balancing failed; will retry", "error", err)
		}
		if !sleep(ctx, d.cfg.AcquireInterval) {
			return
		}
	}
}

func (d *Dispatcher) balance(ctx context.Context) error {
	ms := func(t time.Duration) int64 { return t.Milliseconds() }
	if _, err := d.pool.Exec(ctx, d.q.heartbeat, d.cfg.ID); err != nil {
		return err
	}
	if err := d.refreshPaused(ctx); err != nil {
		return err
	}
	var live int
	if err := d.pool.QueryRow(ctx, d.q.liveDispatchers, ms(3*d.cfg.LeaseTTL)).Scan(&live); err != nil {
		return err
	}
	share := (numLanes + max(live, 1) - 1) / max(live, 1)

	rows, err := d.pool.Query(ctx, d.q.renew, d.cfg.ID, ms(d.cfg.LeaseTTL))
	if err != nil {
		return err
	}
	owned, err := pgx.CollectRows(rows, pgx.RowTo[int16])
	if err != nil {
		return err
	}
	// Lanes whose lease ran out (we were cut off too long): someone else may
	// drain them now, so stop ours.
	d.mu.Lock()
	var lost []int
	for lane := range d.runners {
		if !slices.Contains(owned, int16(lane)) {
			lost = append(lost, lane)
		}
	}
	held := len(d.runners) - len(lost)
	d.mu.Unlock()
	for _, lane := range lost {
		d.log.Warn("lost the lease of a lane", "lane", lane)
		d.stopRunner(lane, false)
	}

	switch {
	case held > share:
		d.giveBack(ctx, held-share)
	case held < share:
		rows, err := d.pool.Query(ctx, d.q.acquire, d.cfg.ID, ms(d.cfg.LeaseTTL), share-held)
		if err != nil {
			return err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int16])
		if err != nil {
			return err
		}
		for _, lane := range got {
			d.startRunner(int(lane))
		}
	}
	return nil
}

// refreshPaused mirrors the paused destinations, so that a pause made by
// another dispatcher, or an operator's resume, takes effect here too.
func (d *Dispatcher) refreshPaused(ctx context.Context) error {
	rows, err := d.pool.Query(ctx, d.q.paused)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	d.paused.Range(func(k, _ any) bool {
		if !slices.Contains(names, k.(string)) {
			d.paused.Delete(k)
		}
		return true
	})
	for _, n := range names {
		d.paused.Store(n, struct{}{})
	}
	return nil
}

// giveBack asks n runners to stop; each releases its lane once its batch
// is recorded. It does not wait, so that balancing (and lease renewal) never
// stalls behind a slow delivery.
func (d *Dispatcher) giveBack(_ context.Context, n int) {
	lanes := d.Lanes()
	slices.Sort(lanes)
	for _, lane := range lanes[len(lanes)-n:] {
		d.stopRunner(lane, true)
	}
}

// releaseAll stops every runner, waits for their batches, and releases all
// lanes: the graceful end of Stop.
func (d *Dispatcher) releaseAll() {
	d.mu.Lock()
	runners := d.runners
	d.runners = map[int]*laneRunner{}
	d.mu.Unlock()
	lanes := make([]int, 0, len(runners))
	for lane, r := range runners {
		r.signalStop()
		lanes = append(lanes, lane)
	}
	for _, r := range runners {
		<-r.stopped
	}
	// The run context is cancelled by now; give the release its own.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.pool.Exec(ctx, d.q.release, d.cfg.ID, lanes); err != nil {
		d.log.Warn("release lanes failed; their leases will expire", "error", err)
	}
	if _, err := d.pool.Exec(ctx, d.q.forgetDispatcher, d.cfg.ID); err != nil {
		d.log.Warn("deregister failed", "error", err)
	}
}

func (d *Dispatcher) startRunner(lane int) {
	r := newLaneRunner(d, lane)
	d.mu.Lock()
	d.runners[lane] = r
	// A runner for this lane that was told to stop may still be finishing
	// its batch: the new one waits for it, so a lane never has two.
	prev := d.last[lane]
	d.last[lane] = r
	d.mu.Unlock()
	go func() {
		if prev != nil {
			<-prev.stopped
		}
		r.run()
	}()
}

// stopRunner asks lane's runner to stop after its batch, without waiting;
// with release, the runner then gives the lane back.
func (d *Dispatcher) stopRunner(lane int, release bool) {
	d.mu.Lock()
	r := d.runners[lane]
	delete(d.runners, lane)
	d.mu.Unlock()
	if r != nil {
		r.releaseOnStop.Store(release)
		r.signalStop()
	}
}
