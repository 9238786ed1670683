package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
)

// Lane is one lease a dispatcher can hold: a destination's lane.
type Lane struct {
	Destination string // the destination's name
	Lane        int    // the lane's number within the destination
}

// leasesConns bounds lane management's own pool: balancing's statements,
// one at a time, and a runner's release beside them.
const leasesConns = 2

// leasesPool makes lane management's pool, with pool's settings (pgxpool
// connects lazily: nothing happens until a statement needs it). Its
// statements touch the lanes, dispatchers and destinations tables only,
// never outbox_messages, so that a lock there (VACUUM FULL, a CREATE INDEX
// without CONCURRENTLY) holding every claim and every connection of pool
// cannot let the leases lapse while this process is alive: the lanes'
// next holders would send again what its runners have in flight.
func leasesPool(pool *pgxpool.Pool) *pgxpool.Pool {
	cfg := pool.Config()
	cfg.MaxConns, cfg.MinConns, cfg.MinIdleConns = leasesConns, 0, 0
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		// The settings are pool's, which pgxpool accepted: cannot happen.
		panic(fmt.Sprintf("worker: lane management's pool: %v", err))
	}
	return p
}

// leasesCloseWait bounds how long a stop waits for lane management's
// connections to close, within the stop's own bound (windDown): pgx gives
// a connection to a database that does not answer 15 s. They close in the
// background past it.
const leasesCloseWait = time.Second

func (d *Dispatcher) closeLeases() {
	closed := make(chan struct{})
	go func() { d.leases.Close(); close(closed) }()
	ctx, cancel := d.windDownWithin(leasesCloseWait)
	defer cancel()
	select {
	case <-closed:
	case <-ctx.Done():
	}
}

// unservedEvery: the check for destinations that no live dispatcher serves
// runs every this many AcquireIntervals (10 s at the default).
const unservedEvery = 10

// manageLanes heartbeats, renews the leases its runners hold, and takes or
// gives back lanes so that every live dispatcher holds its fair share of
// each destination it serves, once per AcquireInterval. Each round is
// bounded, so that a hung connection cannot hold renewals past the leases.
// On the way out it stops the runners, renewing their leases until each
// has recorded its attempts in flight and released its lane.
func (d *Dispatcher) manageLanes(ctx context.Context) {
	defer d.releaseAll()
	tick := time.NewTicker(d.cfg.AcquireInterval)
	defer tick.Stop()
	for {
		if d.balanceGate != nil {
			d.balanceGate()
		}
		rctx, cancel := context.WithTimeout(ctx, d.cfg.LeaseTTL-d.cfg.AcquireInterval)
		err := d.balance(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			d.balanced.Store(int64(d.mono()))
			d.registeredOnce.Do(func() { close(d.registered) })
		}
		d.health.report(opBalance, err)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// watchUnserved runs checkUnserved every unservedEvery AcquireIntervals,
// apart from balancing so that its counting never delays a renewal. It
// starts once this dispatcher has registered (its first balancing round),
// and checks after a recent heartbeat (awaitHeartbeat), or it would report
// its own destinations as served by nobody.
func (d *Dispatcher) watchUnserved(ctx context.Context) {
	select {
	case <-d.registered:
	case <-ctx.Done():
		return
	}
	for {
		if !d.awaitHeartbeat(ctx) {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, d.cfg.LeaseTTL)
		err := d.checkUnserved(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.health.report(opUnserved, err)
		every := unservedEvery * d.cfg.AcquireInterval
		if isPrivilegeError(err) {
			// Refused, it holds /readyz at 503: tried again soon, so that
			// a grant ends that within a round, not ten (an operator's
			// trial: 47 s after the GRANT at a 5 s acquire_interval).
			every = d.cfg.AcquireInterval
		}
		if !sleep(ctx, every) {
			return
		}
	}
}

// awaitHeartbeat waits, when this dispatcher's last heartbeat is as old as
// two AcquireIntervals or LeaseTTL less one (its row may be near its end,
// or past it), for the next one, up to LeaseTTL: the process may have been
// frozen by SIGSTOP (an operator's trial, resumed, was told right away
// that no live dispatcher served its own destination). Heartbeats that
// keep failing do not hold the check back beyond that: the process then
// serves nothing, which the check is there to say. It reports false when
// ctx ends.
func (d *Dispatcher) awaitHeartbeat(ctx context.Context) bool {
	last := d.heartbeatAt.Load()
	if d.mono()-time.Duration(last) < min(2*d.cfg.AcquireInterval, d.cfg.LeaseTTL-d.cfg.AcquireInterval) {
		return true
	}
	if d.awaiting != nil {
		d.awaiting()
	}
	for until := d.mono() + d.cfg.LeaseTTL; d.heartbeatAt.Load() == last && d.mono() < until; {
		if !sleep(ctx, d.cfg.AcquireInterval/10) {
			return false
		}
	}
	return ctx.Err() == nil
}

func (d *Dispatcher) balance(ctx context.Context) error {
	ttl := d.cfg.LeaseTTL.Milliseconds()
	at := d.mono()
	if _, err := d.leases.Exec(ctx, d.q.heartbeat, d.cfg.ID, d.names, ttl); err != nil {
		return err
	}
	d.heartbeatAt.Store(int64(at))
	if err := d.refreshPaused(ctx); err != nil {
		return err
	}
	live, err := d.liveByDestination(ctx)
	if err != nil {
		return err
	}
	if err := d.renew(ctx); err != nil && !errors.Is(err, errNoLeases) {
		return err
	}
	d.share(live)
	for _, name := range d.names {
		share := (numLanes + max(live[name], 1) - 1) / max(live[name], 1)
		held := d.active(name)
		switch {
		case len(held) > share:
			d.giveBack(held, len(held)-share)
		case len(held) < share:
			got, err := d.acquire(ctx, name, share-len(held))
			if err != nil {
				return err
			}
			if got == 0 && len(held) == 0 {
				if err := d.ensureLanes(ctx, name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ensureLanesEvery paces ensureLanes, per destination.
const ensureLanesEvery = 5 * time.Second

// ensureLanes makes the lane rows of destination name again if they are
// gone, at most every ensureLanesEvery for each destination: called when
// the dispatcher holds none of its lanes and could acquire none, which is
// also what a dispatcher sees whose lanes are all another's. Lane rows are made at
// Start only, and a `migrate down` and `up` between two statements (or a
// DELETE) left every dispatcher idle until one restarted. An INSERT that
// finds every row there writes nothing.
func (d *Dispatcher) ensureLanes(ctx context.Context, name string) error {
	if made, ok := d.lanesMade[name]; ok && d.mono()-made < ensureLanesEvery {
		return nil
	}
	tag, err := d.leases.Exec(ctx, d.q.ensureLanes, []string{name})
	if err != nil {
		return err
	}
	d.lanesMade[name] = d.mono()
	if tag.RowsAffected() > 0 {
		d.log.Warn("the lane rows of a destination were gone (migrated down and up, or deleted); made again",
			"destination", name, "lanes", tag.RowsAffected())
	}
	return nil
}

// share tells each Shared destination how many live dispatchers serve it
// (live counts this one once it has heartbeated, which balance does first).
func (d *Dispatcher) share(live map[string]int) {
	for _, name := range d.names {
		if s, ok := d.cfg.Destinations[name].(dispatch.Shared); ok {
			s.ShareAmong(max(live[name], 1))
		}
	}
}

// errNoLeases is renew's answer when no runner holds a lease: nothing was
// asked of the database, so it says nothing of its health (a stop with the
// database hanging logged it as a recovery).
var errNoLeases = errors.New("no lease to renew")

// renew extends the leases that the runners still running hold, each under
// its token, and stops the runners whose lease the database no longer has
// as ours.
func (d *Dispatcher) renew(ctx context.Context) error {
	d.mu.Lock()
	holders := make([]*laneRunner, 0, len(d.holders))
	for _, r := range d.holders {
		holders = append(holders, r)
	}
	d.mu.Unlock()
	if len(holders) == 0 {
		return errNoLeases
	}
	var (
		dests  = make([]string, len(holders))
		lanes  = make([]int16, len(holders))
		tokens = make([]int64, len(holders))
	)
	for i, r := range holders {
		dests[i], lanes[i], tokens[i] = r.key.Destination, int16(r.key.Lane), r.token
	}
	// The renewed leases run out no earlier than LeaseTTL after this
	// moment: the database computes them from a now() that comes later.
	start := d.mono()
	rows, err := d.leases.Query(ctx, d.q.renew, d.cfg.ID, d.cfg.LeaseTTL.Milliseconds(), dests, lanes, tokens)
	if err != nil {
		return err
	}
	got, err := pgx.CollectRows(rows, scanLane)
	if err != nil {
		return err
	}
	renewed := map[Lane]bool{}
	for _, l := range got {
		renewed[l] = true
	}
	for _, r := range holders {
		if renewed[r.key] {
			r.extend(start + d.cfg.LeaseTTL)
			continue
		}
		if r.finishing.Load() {
			continue // it released the lane, or is ending anyway
		}
		// The lease ran out (we were cut off or frozen too long): someone
		// else may drain the lane now. The runner's own deadline has
		// stopped its deliveries already, or will at once.
		if ok, held := d.logs.Allow("lease lost"); ok {
			d.log.Warn("lost the lease of a lane", "destination", r.key.Destination, "lane", r.key.Lane, "similar_lines_left_out", held)
		}
		d.leaseGone(r)
	}
	return nil
}

// leaseGone stops r, whose lease the database no longer has as ours. The
// loss is latched before the stop, which would otherwise read as the cause
// of what the runner gives up (recordFailed reads stopping, then the latch).
func (d *Dispatcher) leaseGone(r *laneRunner) {
	r.lost.Store(true)
	d.stopRunner(r.key, false)
	r.expire()
}

func scanLane(row pgx.CollectableRow) (Lane, error) {
	var (
		l    Lane
		lane int16
	)
	err := row.Scan(&l.Destination, &lane)
	l.Lane = int(lane)
	return l, err
}

func (d *Dispatcher) liveByDestination(ctx context.Context) (map[string]int, error) {
	rows, err := d.leases.Query(ctx, d.q.liveByDestination, d.names)
	if err != nil {
		return nil, err
	}
	live := map[string]int{}
	var (
		name string
		n    int
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { live[name] = n; return nil })
	return live, err
}

// acquire takes up to n expired lanes of destination name, starts a
// runner for each, and says how many it took.
func (d *Dispatcher) acquire(ctx context.Context, name string, n int) (int, error) {
	start := d.mono()
	rows, err := d.leases.Query(ctx, d.q.acquire, d.cfg.ID, d.cfg.LeaseTTL.Milliseconds(), name, n)
	if err != nil {
		return 0, err
	}
	var (
		lane  int16
		token int64
		got   int
	)
	_, err = pgx.ForEachRow(rows, []any{&lane, &token}, func() error {
		d.startRunner(Lane{Destination: name, Lane: int(lane)}, token, start+d.cfg.LeaseTTL)
		got++
		return nil
	})
	return got, err
}

// active returns the lanes of destination name whose runners are not
// stopping.
func (d *Dispatcher) active(name string) []Lane {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Lane
	for k := range d.runners {
		if k.Destination == name {
			out = append(out, k)
		}
	}
	return out
}

// refreshPaused mirrors the paused destinations, so that a pause made by
// another dispatcher, or an operator's resume, takes effect here too.
func (d *Dispatcher) refreshPaused(ctx context.Context) error {
	// Entries stored after this point are newer than the read below.
	readAt := d.pauseGen.Load()
	rows, err := d.leases.Query(ctx, d.q.paused)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var resumed []string
	d.paused.Range(func(k, v any) bool {
		if v.(int64) <= readAt && !slices.Contains(names, k.(string)) && d.paused.CompareAndDelete(k, v) {
			resumed = append(resumed, k.(string))
		}
		return true
	})
	for _, n := range names {
		d.paused.LoadOrStore(n, d.pauseGen.Load())
	}
	// Its lanes idle until their sweep (they found it paused): wake them,
	// so that a resume takes effect within acquire_interval, not
	// sweep_interval.
	for _, n := range resumed {
		d.wakeDestination(n)
	}
	return nil
}

// giveBack asks n of held's runners to stop; each releases its lane once
// its attempts in flight are recorded (and keeps renewing it until then). It does not
// wait, so that balancing never stalls behind a slow delivery.
func (d *Dispatcher) giveBack(held []Lane, n int) {
	slices.SortFunc(held, func(a, b Lane) int { return a.Lane - b.Lane })
	for _, k := range held[len(held)-n:] {
		d.stopRunner(k, true)
	}
}

// releaseAll stops every runner and, while they finish the attempts in
// flight and record them, keeps renewing their leases (an attempt may
// outlast one);
// each runner then releases its lane. The graceful end of Stop.
func (d *Dispatcher) releaseAll() {
	d.mu.Lock()
	runners := d.runners
	d.runners = map[Lane]*laneRunner{}
	var waiting []*laneRunner
	for _, r := range d.holders {
		waiting = append(waiting, r)
	}
	d.mu.Unlock()
	for _, r := range runners {
		r.releaseOnStop.Store(true)
		r.signalStop()
	}
	done := make(chan struct{})
	go func() {
		for _, r := range waiting {
			<-r.stopped
		}
		close(done)
	}()
	tick := time.NewTicker(d.cfg.AcquireInterval)
	defer tick.Stop()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-tick.C:
			if d.gaveUp.Load() {
				// Stop left a stuck delivery: its lease lapses, and
				// another dispatcher takes the lane.
				continue
			}
			// Within the wind-down's budget too: with the database
			// hanging, a renewal bounded by the lease alone held the
			// stop up to lease_ttl past it.
			ctx, cancel := d.windDownWithin(d.cfg.LeaseTTL - d.cfg.AcquireInterval)
			if err := d.renew(ctx); !errors.Is(err, errNoLeases) {
				d.health.report(opStopRenew, err)
			}
			cancel()
		}
	}
	ctx, cancel := d.windDown()
	defer cancel()
	if _, err := d.leases.Exec(ctx, d.q.forgetDispatcher, d.cfg.ID); err != nil {
		d.log.Warn("deregister failed", "error", err)
	}
}

func (d *Dispatcher) startRunner(key Lane, token int64, deadline time.Duration) {
	r := newLaneRunner(d, key, token, deadline)
	d.mu.Lock()
	d.runners[key] = r
	// A runner of this lane that lost its lease may still be winding down:
	// the new one waits for it, so a lane never has two.
	prev := d.holders[key]
	d.holders[key] = r
	d.mu.Unlock()
	go func() {
		if prev != nil {
			<-prev.stopped
		}
		r.run()
	}()
}

// stopRunner asks key's runner to stop once its attempts in flight are
// recorded (it starts no other), without waiting;
// with release, the runner then gives the lane back.
func (d *Dispatcher) stopRunner(key Lane, release bool) {
	d.mu.Lock()
	r := d.runners[key]
	delete(d.runners, key)
	d.mu.Unlock()
	if r != nil {
		r.releaseOnStop.Store(release)
		r.signalStop()
	}
}

// runnerDone forgets r as the holder of its lane, unless a newer runner
// took its place.
func (d *Dispatcher) runnerDone(r *laneRunner) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holders[r.key] == r {
		delete(d.holders, r.key)
	}
	if d.runners[r.key] == r {
		delete(d.runners, r.key)
	}
}
