package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/loglimit"
)

// ErrAbandoned is wrapped by Stop's error when Stop (or Start's context)
// ran out of time with deliveries in flight: they were cut off, recorded as
// abandoned, and will be sent again.
var ErrAbandoned = errors.New("abandoned")

// StuckGrace is how long Stop, past its deadline, waits for the deliveries
// it cancelled to return. A Destination must return when its context is
// done; one that does not is left running (its lease no longer renewed,
// so that another dispatcher takes the lane within LeaseTTL), and Stop
// returns an error wrapping ErrAbandoned.
const StuckGrace = 5 * time.Second

// Dispatcher drains the outbox of one schema. Create it with New, run it with
// Start, end it with Stop.
type Dispatcher struct {
	pool *pgxpool.Pool
	// leases is lane management's own pool (leasesPool), apart from pool:
	// statements waiting on a lock of outbox_messages can hold every
	// connection of pool, and the leases must still be renewed. Set by
	// Start.
	leases *pgxpool.Pool
	cfg    Config
	log    *slog.Logger
	q      queries
	river  *river.Client[pgxTx]

	// abortCtx bounds deliveries: cancelled only when Stop's own context
	// runs out, so a normal stop lets the attempts in flight finish.
	abortCtx context.Context
	abort    context.CancelFunc
	// windDownBy is when a stop's wind-down must end (Unix ns; 0: no
	// stop, or none with a deadline yet): see windDown.
	windDownBy atomic.Int64

	names  []string  // the destinations served, sorted
	epoch  time.Time // mono() counts from here, on the monotonic clock
	health dbHealth
	logs   loglimit.Limiter

	// mu guards the lifecycle state and the maps below; it is never held
	// across I/O, so that Stop, Ready and the rest answer during a slow
	// Start.
	mu      sync.Mutex
	started bool
	stopped bool // a stop has begun, or Stop came before Start
	// starting is true while a Start does its I/O; cancelStart cuts that
	// I/O short and startDone closes when that Start has returned.
	starting    bool
	cancelStart context.CancelFunc
	startDone   chan struct{}
	// finished closes at the very end of the first stop (River's stop
	// included): later or concurrent Stops wait for it, so that closing the
	// pool after any Stop returned loses nothing (but what deliveries left
	// running past StuckGrace would record: those messages are sent again).
	finished chan struct{}
	startCtx context.Context // cancelling it cuts a graceful stop short
	// runCtx is the goroutines' context: done once a stop began.
	runCtx context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// abandoned counts attempts cut off by us, so that a stop says (and
	// logs) that deliveries were abandoned only when some were.
	abandoned atomic.Int64
	// unrecorded counts attempt results the database did not take (their
	// messages are sent again): the lines that say so are rate-limited,
	// so each carries the total, and a stop logs it once more.
	unrecorded atomic.Int64
	// delivering counts calls of a Destination's Deliver under way; after
	// a stop's StuckGrace, one still there means a Destination that
	// ignores its context, and gaveUp then stops the lease renewals of
	// a stop that no longer waits for it.
	delivering atomic.Int64
	gaveUp     atomic.Bool
	runners    map[Lane]*laneRunner // runners draining, not told to stop
	holders    map[Lane]*laneRunner // runners still running (draining or finishing their attempts): the leases to renew
	unserved   map[string]Backlog   // destinations no live dispatcher serves: pending messages
	// paused mirrors the paused destinations: name -> the pauseGen after
	// which a read of the database sees it (MaxInt64 while a 410's pause
	// is being stored), so a refresh only lifts entries its read covers.
	paused   sync.Map
	pauseGen atomic.Int64

	listening      atomic.Bool
	listeningSince atomic.Int64 // mono() when the listener began to listen
	balanced       atomic.Int64 // mono() of the last successful balancing round
	// heartbeatAt is mono() just before the last heartbeat that
	// succeeded: its row is alive until LeaseTTL after it.
	heartbeatAt atomic.Int64
	// lanesMade is mono() when each destination's lane rows were last
	// made (Start, ensureLanes in lanes.go): balance's goroutine only,
	// after Start.
	lanesMade map[string]time.Duration
	// registered is closed after the first successful balancing round.
	registered     chan struct{}
	registeredOnce sync.Once
	// keysCursor is where the purge of idle ordering keys goes on; keysMu
	// serialises the key purge of concurrent Purge calls.
	keysMu     sync.Mutex
	keysCursor string

	// schemaBehind is set when a statement found the schema older than
	// ours while running (schema.go); schemaMu and schemaProbed pace the
	// probes that look for it to come back.
	schemaBehind atomic.Bool
	schemaMu     sync.Mutex
	schemaProbed time.Time
	// answerLost, set by tests only, fails a recording that committed, as
	// a connection broken before its answer would.
	answerLost func() error
	// balanceGate, set by tests only, runs before each balancing round
	// (a test holds it to stand for a frozen process); awaiting, set by
	// tests only, runs when the unserved check waits for a heartbeat.
	balanceGate func()
	awaiting    func()
	// probeSendTo, probeWait and probeEvery are listenProbeChannel,
	// listenProbeWait and listenProbeEvery but in tests; probed, set by
	// tests only, receives whether each probe arrived.
	probeSendTo string
	probeWait   time.Duration
	probeEvery  time.Duration
	probed      func(arrived bool)
	// walkPace, walkFree and downQuiet are walk.go's; tests of the pacing
	// change them.
	walkPace  int
	walkFree  time.Duration
	downQuiet time.Duration
	// listenSteady is listen.go's; a test of the reconnects shortens it.
	listenSteady time.Duration
	// pools deliver for the destinations that bound their calls in
	// flight (pool.go); set by New, read-only after.
	pools map[string]*deliveryPool
	// idle gathers the parked lanes for the next idle probe (idle.go).
	idle idleProbes
	// sweepWalks: a lane of the destination is on a sweep walk (walk.go).
	sweepWalks map[string]*atomic.Bool
	// failedInARow: the destination's attempts that failed since it last
	// delivered or refused (Dead) a message, in this process, and
	// lastAnswered: d.mono() then, 0 before it did (walk.go).
	failedInARow, lastAnswered map[string]*atomic.Int64
}

type queries struct {
	schemaProbe, heartbeat, liveByDestination, forgetDispatcher, ensureLanes, renew, acquire, release,
	claim, claimRetries, idleProbe, record, recordedBefore, pause, paused, unserved, purgeInbox, purgeDelivered, purgeFailures, purgeKeys string
	claimAround, claimRetriesAround string // leaving out stragglers
}

// New returns a Dispatcher that uses pool for everything. It does not start
// work until Start. cfg.Destinations is required: a nil cfg, or one without
// destinations, is an error naming the field.
//
// It takes a *pgxpool.Pool, not an interface: River's riverpgxv5 driver and
// the dispatcher's LISTEN connection need a pool (made with the pool's
// settings and its BeforeConnect hook). The pool's connections must not
// have a notification handler of their own (pgconn's OnNotification, in
// its config or set by BeforeConnect): pgx then hands none to the
// listeners.
func New(pool *pgxpool.Pool, cfg *Config) (*Dispatcher, error) {
	if pool == nil {
		return nil, errors.New("worker: New needs a pool")
	}
	if pool.Config().ConnConfig.OnNotification != nil {
		// River's listener, on a connection of the pool, and ours, made
		// from its settings, would get nil notifications: a review found
		// the process crashing at its first wake-up.
		return nil, errors.New("worker: New needs a pool whose connections have no OnNotification handler (pgx then hands the dispatcher's and River's listeners no notifications); give the dispatcher a pool of its own")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	r := func(q string) string { return dbschema.Render(q, c.Schema) }
	log := c.Logger.With("component", "outboxd.worker", "dispatcher", c.ID)
	d := &Dispatcher{
		pool: pool, cfg: c, log: log,
		q: queries{
			schemaProbe: r(schemaProbeSQL), heartbeat: r(heartbeatSQL), liveByDestination: r(liveByDestinationSQL), forgetDispatcher: r(forgetDispatcherSQL),
			ensureLanes: r(ensureLanesSQL), renew: r(renewSQL), acquire: r(acquireSQL), release: r(releaseSQL),
			claim: r(claimSQL), claimRetries: r(claimRetriesSQL), idleProbe: r(idleProbeSQL), record: r(recordSQL), recordedBefore: r(recordedBeforeSQL), pause: r(pauseSQL), paused: r(pausedSQL),
			claimAround: r(claimAround(claimTmpl, 8)), claimRetriesAround: r(claimAround(claimRetriesTmpl, 9)),
			unserved:   r(unservedSQL),
			purgeInbox: r(purgeInboxSQL), purgeDelivered: r(purgeDeliveredSQL), purgeFailures: r(purgeFailuresSQL),
			purgeKeys: r(purgeKeysSQL),
		},
		names:        slices.Sorted(maps.Keys(c.Destinations)),
		epoch:        time.Now(),
		health:       dbHealth{log: log, metrics: c.Metrics},
		logs:         loglimit.Limiter{Every: logEvery},
		runners:      map[Lane]*laneRunner{},
		holders:      map[Lane]*laneRunner{},
		registered:   make(chan struct{}),
		walkPace:     walkPace,
		walkFree:     walkFree,
		downQuiet:    downQuiet,
		listenSteady: listenSteady,
		probeSendTo:  listenProbeChannel,
		probeWait:    listenProbeWait,
		probeEvery:   listenProbeEvery,
	}
	d.health.every = d.tryEvery
	d.pools = map[string]*deliveryPool{}
	for name, dest := range c.Destinations {
		if b, ok := dest.(dispatch.Concurrent); ok {
			if n := b.Concurrency(); n > 0 {
				d.pools[name] = &deliveryPool{limit: n}
			}
		}
	}
	d.sweepWalks = make(map[string]*atomic.Bool, len(d.names))
	d.failedInARow = make(map[string]*atomic.Int64, len(d.names))
	d.lastAnswered = make(map[string]*atomic.Int64, len(d.names))
	for _, name := range d.names {
		d.sweepWalks[name] = new(atomic.Bool)
		d.failedInARow[name], d.lastAnswered[name] = new(atomic.Int64), new(atomic.Int64)
	}
	c.Metrics.bind(d.names)
	d.abortCtx, d.abort = context.WithCancel(context.Background())
	if !c.DisableRiver {
		var err error
		if d.river, err = d.newRiver(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// ID is the name this dispatcher uses in leases and attempt records.
func (d *Dispatcher) ID() string { return d.cfg.ID }

// Config is the configuration in effect: the one given to New with its
// defaults filled in (its maps are copies).
func (d *Dispatcher) Config() Config {
	c := d.cfg
	c.Destinations = maps.Clone(c.Destinations)
	c.RetryByDestination = maps.Clone(c.RetryByDestination)
	return c
}

// Start begins draining in the background, until Stop or until ctx is
// cancelled. Cancelling ctx stops the dispatcher as Stop does with an
// expired context (River's rule): in-flight deliveries are cut off and
// recorded as abandoned, leases released; a Stop called meanwhile or
// afterwards waits for that stop to complete. Cancelling ctx during a
// graceful Stop cuts it short the same way. For a graceful stop call Stop,
// and pass Start a context that outlives it (context.WithoutCancel). A ctx
// already done is an error wrapping ctx's. A Dispatcher starts once: Start
// after Stop returns an error (make a new one with New). A Stop during
// Start (Start blocked on the database, say) cuts Start's work short: Start
// undoes what it began and returns an error saying so.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		// Its owner stopped it: running it again (a shutdown racing the
		// startup) would outlive that decision.
		return errors.New("worker: Dispatcher was stopped; make a new one with New")
	}
	if d.started || d.starting {
		d.mu.Unlock()
		return errors.New("worker: already started")
	}
	if err := ctx.Err(); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("worker: start: %w", err)
	}
	ioCtx, cancelIO := context.WithCancel(ctx)
	defer cancelIO()
	d.starting, d.cancelStart, d.startDone = true, cancelIO, make(chan struct{})
	d.mu.Unlock()

	runCtx, cancel := context.WithCancel(context.Background())
	riverUp := false
	err := d.startIO(ioCtx, runCtx)
	if err == nil {
		riverUp = d.river != nil
	}

	d.mu.Lock()
	if d.stopped || err != nil {
		stopped := d.stopped
		d.mu.Unlock()
		cancel()
		if riverUp {
			d.unwindRiver()
		}
		if stopped {
			err = errors.New("worker: start: the dispatcher was stopped during start")
		}
		d.mu.Lock()
		d.starting = false
		close(d.startDone)
		d.mu.Unlock()
		return err
	}
	d.starting = false
	close(d.startDone)
	d.started, d.runCtx, d.cancel, d.done = true, runCtx, cancel, make(chan struct{})
	d.startCtx, d.finished = ctx, make(chan struct{})
	d.leases = leasesPool(d.pool)
	var wg sync.WaitGroup
	wg.Add(5)
	if d.river != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.scheduleMaintenance(runCtx) }()
	}
	go func() { defer wg.Done(); d.listen(runCtx) }()
	go func() { defer wg.Done(); d.manageLanes(runCtx) }()
	go func() { defer wg.Done(); d.watchUnserved(runCtx) }()
	go func() { defer wg.Done(); d.watchSchema(runCtx) }()
	go func() { defer wg.Done(); d.probeIdleLanes(runCtx) }()
	d.cfg.Metrics.watchRefused(d)
	go func() { wg.Wait(); d.closeLeases(); d.cfg.Metrics.unwatchRefused(d); close(d.done) }()
	go d.stopOnCancel(ctx, d.done)
	d.mu.Unlock()
	d.log.Info("dispatcher started", "destinations", len(d.cfg.Destinations))
	return nil
}

// startIO is Start's I/O, done without d.mu: ioCtx is cut by a Stop
// arriving meanwhile; River runs on runCtx.
func (d *Dispatcher) startIO(ioCtx, runCtx context.Context) error {
	if err := d.probeSchema(ioCtx); err != nil {
		if isSchemaError(err) {
			return fmt.Errorf("worker: start: %w", errSchemaBehind(d.cfg.Schema, err))
		}
		return fmt.Errorf("worker: start: %w", err)
	}
	if _, err := d.pool.Exec(ioCtx, d.q.ensureLanes, d.names); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	d.lanesMade = make(map[string]time.Duration, len(d.names))
	for _, name := range d.names {
		d.lanesMade[name] = d.mono()
	}
	if d.river != nil {
		if err := d.river.Start(runCtx); err != nil {
			return fmt.Errorf("worker: start river: %w", err)
		}
	}
	return nil
}

// unwindRiver stops a River that Start started but a Stop overtook; no
// job of ours ran yet, so cancelling is safe, and bounded.
func (d *Dispatcher) unwindRiver() {
	hard, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.river.StopAndCancel(hard); err != nil {
		d.log.Warn("stopping River after a stop during start", "error", err)
	}
}

// stopOnCancel stops the dispatcher abruptly when ctx ends before it
// stopped (done closes once its goroutines ended, after Stop). A stop
// already under way watches ctx itself.
func (d *Dispatcher) stopOnCancel(ctx context.Context, done chan struct{}) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	if first, _ := d.beginStop(); !first {
		return
	}
	defer close(d.finished)
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.stop(expired); err != nil {
		d.log.Info("start context cancelled: stopped at once", "error", err)
	} else {
		d.log.Debug("start context cancelled: stopped at once, nothing was in flight")
	}
}

// stopStart marks the dispatcher stopped and cuts short the I/O of a Start
// under way; it returns the channel that closes when that Start returned,
// or nil if no Start is under way.
func (d *Dispatcher) stopStart() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.starting {
		return nil
	}
	d.stopped = true
	d.cancelStart()
	return d.startDone
}

// beginStop marks a stop as begun; first is false when one already was,
// and finished is the channel that closes when it completes (nil if the
// dispatcher never started: it is then marked stopped, never to start).
func (d *Dispatcher) beginStop() (first bool, finished chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started || d.stopped {
		d.stopped = true
		return false, d.finished
	}
	d.stopped = true
	return true, d.finished
}

// Stop ends draining: runners let the attempts in flight finish and
// record them, and start no other (the rest of a batch stays pending,
// untried, for the lane's next holder), their leases renewed meanwhile (until ctx is done, or Start's context: then
// in-flight deliveries are cut off, recorded as abandoned, and will be sent
// again, and Stop returns an error wrapping that context's), leases are
// released for other dispatchers, and River stops. Recording, releasing,
// deregistering and stopping River take at most StuckGrace past ctx's
// deadline in all, even with the database hanging (5 s each, and 1 s to
// close lane management's connections, without a deadline; River gets 5 s
// of its own once deliveries are left running, below); they are not
// waited for past it (Stop's error says River's was not); deliveries that
// do not return within StuckGrace of their cancellation are left running
// (their Destination ignores its context) and Stop's error says so. Stop is idempotent: a
// Stop while another stop is under way (a cancelled Start context's
// included) waits for it to complete, or returns ctx's error if ctx ends
// first; once the dispatcher stopped, Stop returns nil. Stop before Start
// returns nil and leaves the dispatcher stopped: a later Start is an error.
// Stop during Start cuts the start short and waits for Start to unwind,
// then returns nil (or ctx's error if ctx ends first).
func (d *Dispatcher) Stop(ctx context.Context) error {
	if starting := d.stopStart(); starting != nil {
		select {
		case <-starting:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("worker: stop: waiting for the start under way to unwind: %w", ctx.Err())
		}
	}
	first, finished := d.beginStop()
	if !first {
		if finished == nil {
			return nil
		}
		select {
		case <-finished:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("worker: stop: waiting for the stop under way: %w", ctx.Err())
		}
	}
	defer close(finished)
	return d.stop(ctx)
}

// windDown is the context of one database step of a stop's wind-down, or
// of a recording: 5 s, and once the stop's deadline is known, no later
// than StuckGrace past it, so that with the database hanging the whole
// stop ends within its deadline + StuckGrace (recording, releasing,
// deregistering and River took 5 s each in turn: 20 s past it).
//
// Once Stop gave up on deliveries that ignore their cancellation (gaveUp),
// it no longer waits: their late results, and River's stop, get 5 s of
// their own (a late result lost would be sent again).
func (d *Dispatcher) windDown() (context.Context, context.CancelFunc) {
	return d.windDownWithin(5 * time.Second)
}

// windDownWithin is windDown with another timeout than 5 s.
func (d *Dispatcher) windDownWithin(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.windDownTimeout(timeout))
}

// recordBudget is what a recording has once a stop began: until the
// stop's deadline (the rest of StuckGrace is for releasing the lanes and
// the rest of the wind-down), and at least a wind-down step.
func (d *Dispatcher) recordBudget() time.Duration {
	budget := d.windDownTimeout(5 * time.Second)
	if by := d.windDownBy.Load(); by != 0 && !d.gaveUp.Load() {
		budget = max(budget, time.Until(time.Unix(0, by))-StuckGrace)
	}
	return budget
}

// windDownTimeout is timeout, cut to the stop's bound once it is known.
func (d *Dispatcher) windDownTimeout(timeout time.Duration) time.Duration {
	if by := d.windDownBy.Load(); by != 0 && !d.gaveUp.Load() {
		timeout = min(timeout, time.Until(time.Unix(0, by)))
	}
	return timeout
}

// stop is the first Stop's work.
func (d *Dispatcher) stop(ctx context.Context) error {
	// Also when the run's goroutines do not end (a delivery that ignores
	// its cancellation): a stopped dispatcher is not what the gauge says.
	defer d.cfg.Metrics.unwatchRefused(d)
	if dl, ok := ctx.Deadline(); ok {
		d.windDownBy.Store(dl.Add(StuckGrace).UnixNano())
	}
	d.cancel()
	cutBefore := d.abandoned.Load()
	var cut error
	select {
	case <-d.done:
	case <-ctx.Done():
		cut = ctx.Err()
	case <-d.startCtx.Done():
		cut = d.startCtx.Err()
	}
	stuck := false
	if cut != nil {
		// Cancelled without a deadline: the wind-down's budget starts now.
		d.windDownBy.CompareAndSwap(0, time.Now().Add(StuckGrace).UnixNano())
		// Out of patience: cancel in-flight deliveries (they are recorded as
		// retries, or stay pending) and wait for the runners to notice, a
		// bounded time: a Destination that ignores its context would hold
		// Stop for ever.
		d.abort()
		grace := time.NewTimer(StuckGrace)
		select {
		case <-d.done:
		case <-grace.C:
			// Recording, releasing and deregistering have budgets of their
			// own: only a delivery still under way is given up on.
			if stuck = d.delivering.Load() > 0; stuck {
				d.gaveUp.Store(true)
			} else {
				<-d.done
			}
		}
		grace.Stop()
	}
	d.abort()
	var err error
	if n := d.abandoned.Load() - cutBefore; cut != nil && n > 0 {
		err = fmt.Errorf("worker: stop: %d in-flight deliveries %w: %w", n, ErrAbandoned, cut)
		// The attempts' own lines are rate-limited (one per destination
		// and interval): the count is said once here.
		d.log.Warn("in-flight deliveries cut off by the stop (its deadline, or the start context cancelled); recorded as abandoned, they will be sent again", "abandoned", n)
	}
	if stuck {
		err = errors.Join(err, fmt.Errorf("worker: stop: deliveries did not return within %s of their cancellation "+
			"(a Destination that ignores its context): left running and %w; their leases lapse within lease_ttl "+
			"and what they do not record in time is sent again", StuckGrace, ErrAbandoned))
	}
	if d.river != nil {
		if rerr := d.stopRiver(); errors.Is(rerr, context.DeadlineExceeded) {
			err = errors.Join(err, fmt.Errorf("worker: stop river: not stopped within the stop's deadline + StuckGrace (does the database answer?): %w", rerr))
		} else if rerr != nil {
			err = errors.Join(err, fmt.Errorf("worker: stop river: %w", rerr))
		}
	}
	if n := d.unrecorded.Load(); n > 0 {
		d.log.Warn("attempt results not recorded since the dispatcher started (a lost lease, a failing or hanging database, a stop's budget run out); their messages were or will be sent again, with the same idempotency keys",
			"not_recorded_in_all", n)
	}
	d.log.Info("dispatcher stopped")
	return err
}

// stopRiver stops River and waits for it, up to 5 s, so that no job still
// uses the pool after Stop. stop cancelled River's context already, which
// River takes as StopAndCancel: a running maintenance job is cancelled,
// never waited for. Stop's own context is not used: an expired one would
// return before River stopped.
func (d *Dispatcher) stopRiver() error {
	hard, cancel := d.windDown()
	defer cancel()
	return d.river.StopAndCancel(hard)
}

// Ready reports whether the dispatcher is started, not stopping, listening
// for commits, has renewed its leases within LeaseTTL (a dispatcher that
// cannot renew holds no lane), and finds the schema its statements need
// (not taken back by a migration while it runs), and the database refuses
// its role no privilege (Refused).
func (d *Dispatcher) Ready() bool {
	if len(d.health.refusedOps()) > 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fresh := d.mono()-time.Duration(d.balanced.Load()) < d.cfg.LeaseTTL
	return d.started && !d.stopped && d.listening.Load() && d.balanced.Load() > 0 && fresh && !d.schemaBehind.Load()
}

// Failing describes the database failures under way, if any: how long
// operations have failed and the latest one's error (SQLSTATE included),
// or "". /readyz shows it beside "not ready": a dispatcher left on a
// server that became a standby fails with "read-only transaction" while
// Ready only says its leases are stale.
func (d *Dispatcher) Failing() string { return d.health.failure() }

// Refused returns the operations (as the log names them: "claim",
// "recording results", ...) that the database refused this dispatcher's
// role a privilege for and that have not succeeded since, as long as the
// last refusal is recent (30 s, or three of the operation's intervals
// when longer: an operation no longer tried, such as the claims of a
// lane given to another dispatcher, stops counting). Ready is false while
// there is one: a dispatcher whose claims are refused renews its leases,
// and would otherwise look ready while it delivers nothing.
func (d *Dispatcher) Refused() []string {
	var names []string
	for _, op := range d.health.refusedOps() {
		names = append(names, op.name)
	}
	return names
}

// tryEvery is how often op is tried again while it is needed, failing:
// what a refusal of it counts for (dbHealth.refusedOps).
func (d *Dispatcher) tryEvery(op healthOp) time.Duration {
	switch op {
	case opBalance, opStopRenew:
		return d.cfg.AcquireInterval
	case opUnserved:
		// Refused, it is tried again every AcquireInterval, after a wait
		// of up to LeaseTTL for a heartbeat, which the same grant
		// (outbox_dispatchers) may refuse.
		return d.cfg.AcquireInterval + d.cfg.LeaseTTL
	case opIdleProbe:
		return d.cfg.SweepInterval
	}
	return 5 * time.Second // the claims', recordings' and listener's longest backoff
}

// Lanes returns the lanes this dispatcher drains now.
func (d *Dispatcher) Lanes() []Lane {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Keys(d.runners))
}

// Unserved returns, as of the last check, the destinations that have
// pending messages but no live dispatcher serving them, with the number of
// such messages. They wait; none is dead-lettered for it.
func (d *Dispatcher) Unserved() map[string]Backlog {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.unserved)
}

// mono is the time since the dispatcher was created, on the monotonic
// clock: lease deadlines and attempt ages are kept in it, immune to wall
// clock steps.
func (d *Dispatcher) mono() time.Duration { return time.Since(d.epoch) }

// wakeDestination wakes the runners of destination's lanes.
func (d *Dispatcher) wakeDestination(destination string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, r := range d.runners {
		if k.Destination == destination {
			r.wake()
		}
	}
}

// wakeAll wakes every runner: after the LISTEN connection was away, the
// notifications sent meanwhile are lost. Each walks, even while its
// wake-ups are paced: the lost ones may have been a requeue's.
func (d *Dispatcher) wakeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.runners {
		r.mustWalkNext.Store(true)
		r.wake()
	}
}

// sleep waits for d or ctx; it reports false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
