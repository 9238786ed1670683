package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/nilcheck"
)

// Notifier wakes dispatchers for committed enqueues without a NOTIFY in the
// enqueueing transactions. PostgreSQL holds a global lock from a notifying
// transaction's pre-commit through its commit, so with a NOTIFY inside them
// every producer's commit waits for the others (measured: enqueue 2.4x
// slower at 16 connections); with a Notifier, Enqueue returns its
// transaction's id, and the Notifier asks PostgreSQL which of those
// transactions committed, and announces their lanes in one NOTIFY from its
// own connection: 500 µs after an enqueue that finds it idle, and while
// enqueues keep coming, once every 2 ms (each question then answers for
// every transaction of the last 2 ms: its cost on the server is shared).
//
// Give one Notifier to every Outbox of a process (Config.Notifier), Start
// it, and Stop it on the way out. While it is not running (before Start,
// after Stop), Enqueue sends the NOTIFY in the enqueueing transaction, as
// without a Notifier (one statement more, and those commits serialised),
// and the Notifier's Logger says so once. A message whose announcement is
// lost (the process stops with its transaction open, the database is
// briefly away) is still found by the dispatcher's sweep, within its
// SweepInterval.
type Notifier struct {
	db       DB
	query    string
	channel  string
	interval time.Duration
	busy     time.Duration
	// backoffCap bounds the wait while backing off (see backoff): maxWait;
	// tests lengthen it.
	backoffCap time.Duration
	// questionTimeout bounds one question: 5 s; tests lengthen it.
	questionTimeout time.Duration
	log             *slog.Logger
	// activityFailed: the last commitsUnderWay read failed, and said so
	// (atomic: a Start after a cancelled one may overlap its run).
	activityFailed atomic.Bool

	mu      sync.Mutex
	pending map[int64]uint64 // transaction id -> its lanes (low 32 bits) and destination bits (high 32, internal/wakeup)
	open    map[int64]openTxn
	running bool
	// live mirrors running for Enqueue, which reads it on every call;
	// idleWarned: the warning that it is not running was logged (once
	// per stop).
	live, idleWarned atomic.Bool
	full             bool   // maxPending reached (logged once)
	added            uint64 // count of add calls, to tell whether any came lately

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	// flushed, when set (tests), receives the outcome of each flush;
	// asking, when set (tests), runs while a flush's question is out.
	flushed chan flushReport
	asking  func()
	// backedOff, when set (tests), receives each backoff wait with the
	// openFor it was computed from.
	backedOff chan [2]time.Duration
}

// openTxn is what the Notifier knows of a transaction its questions found
// open.
type openTxn struct {
	asked int       // questions that found it open
	since time.Time // when the first of them was answered
	// committing: when commitsUnderWay first found its session running
	// its COMMIT (or no session holding it); zero before.
	committing time.Time
	// gone: no session held it then. Still open at a later question, it is
	// a prepared transaction (two-phase commit), not a COMMIT under way.
	gone bool
}

type flushReport struct {
	committed, aborted, inProgress int
	// young counts the open transactions asked about at most openRetries
	// times: most likely commits under way.
	young int
	// openFor is how long the youngest of the open transactions has been
	// seen open (since the first answer that found it so).
	openFor time.Duration
	// watch: the open transactions past their quick questions, not yet
	// seen committing for commitWatch (commitsUnderWay asks whether they
	// are committing).
	watch []int64
	at    time.Time // when the answer came
}

// NotifierConfig configures a Notifier. The zero value is ready to use.
type NotifierConfig struct {
	// Schema holds the outbox tables. Default "outboxd".
	Schema string
	// Interval is how long the Notifier waits after an enqueue that finds
	// it idle (no question in the last BusyInterval) before it asks which
	// transactions committed (a transaction usually commits within it).
	// Default 500 µs. On Linux a wait under a millisecond is a timerfd's:
	// the runtime's timers would round it up to about 1.1 ms.
	Interval time.Duration
	// BusyInterval is the least time between the starts of two questions
	// while enqueues keep coming (with none new since the last question, an
	// open transaction is asked about again after Interval, up to three
	// times per transaction, before the Notifier backs off): each waits for
	// it, so that one question (a statement and a NOTIFY on the server)
	// answers for all the transactions of its interval. An enqueue is then announced within
	// BusyInterval of its commit, plus a round trip, unless the Notifier
	// is backing off (only open transactions pending, none new, none of
	// them in its COMMIT: a quarter of how long the youngest has been open,
	// up to 50 ms; a new enqueue ends a wait of a millisecond or more, so a
	// transaction left open does not hold back the others; the database
	// unreachable: up to 1 s). A transaction seen running its COMMIT (a
	// slow WAL flush), or held by no session any more, is asked about
	// every BusyInterval for the first second it is seen so (commitWatch),
	// then backed off from, as is every other while one is past it.
	// Default 2 ms
	// (docs/benchmarks.md, bench-enqueue: at one connection, asking every
	// 500 µs cost the server 10 to 20% more CPU per enqueue than a plain
	// INSERT).
	BusyInterval time.Duration
	// Logger receives a line when the database cannot be asked. Default
	// slog.Default().
	Logger *slog.Logger
}

// maxPending bounds what a Notifier remembers: beyond it (a stopped
// Notifier, a long database outage) announcements are dropped, and the
// dispatchers' sweep finds those messages.
const maxPending = 100_000

// NewNotifier returns a Notifier that asks db (a pool: it runs outside any
// enqueueing transaction). It does nothing until Start.
func NewNotifier(db DB, cfg *NotifierConfig) (*Notifier, error) {
	if nilcheck.IsNil(db) {
		return nil, errors.New("outbox: NewNotifier needs a database handle (db is nil)")
	}
	c := NotifierConfig{}
	if cfg != nil {
		c = *cfg
	}
	c.Schema = dbschema.OrDefault(c.Schema)
	if err := dbschema.Validate(c.Schema); err != nil {
		return nil, err
	}
	if c.Interval <= 0 {
		c.Interval = 500 * time.Microsecond
	}
	if c.BusyInterval <= 0 {
		c.BusyInterval = 2 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return &Notifier{db: db, query: notifierFlushSQL, channel: dbschema.NotifyChannel(c.Schema),
		interval: c.Interval, busy: c.BusyInterval, backoffCap: maxWait, questionTimeout: 5 * time.Second, log: c.Logger.With("component", "outboxd.notifier"),
		pending: map[int64]uint64{}, open: map[int64]openTxn{}, kick: make(chan struct{}, 1)}, nil
}

// Start begins announcing in the background. Cancelling ctx stops the
// Notifier as Stop does (what has committed is still announced). It is an
// error to start a running Notifier, or to start it with a ctx already done
// (the error wraps ctx's).
func (n *Notifier) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return errors.New("outbox: notifier already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("outbox: notifier start: %w", err)
	}
	n.running, n.stop, n.done = true, make(chan struct{}), make(chan struct{})
	n.live.Store(true)
	n.idleWarned.Store(false)
	go n.run(n.stop, n.done)
	go n.stopOnCancel(ctx, n.stop, n.done)
	return nil
}

// stopOnCancel stops the run whose channels are stop and done when ctx
// ends first; it leaves alone a later run (Stop, then Start again).
func (n *Notifier) stopOnCancel(ctx context.Context, stop, done chan struct{}) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	n.mu.Lock()
	if !n.running || n.stop != stop {
		n.mu.Unlock()
		return
	}
	n.running = false
	n.live.Store(false)
	close(stop)
	n.mu.Unlock()
	<-done
}

// Stop announces what has committed already (until ctx is done: then it
// returns ctx's error) and stops. Stop is idempotent: while a stop is under
// way (another Stop's, or a cancelled Start context's) it waits for that
// stop's last announcement, and once stopped it returns nil.
func (n *Notifier) Stop(ctx context.Context) error {
	n.mu.Lock()
	if n.running {
		n.running = false
		n.live.Store(false)
		close(n.stop)
	}
	done := n.done // nil if never started
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notRunning reports whether Enqueue must announce in its transaction,
// and logs once per stop that it does.
func (n *Notifier) notRunning() bool {
	if n.live.Load() {
		return false
	}
	if n.idleWarned.CompareAndSwap(false, true) {
		n.log.Warn("the Notifier is not running (not started, or stopped): enqueues NOTIFY in their own transactions meanwhile, which serialises their commits; Start it")
	}
	return true
}

// add remembers that transaction xid enqueued into mask: lanes in its low
// 32 bits, destinations' filter bits in its high 32.
func (n *Notifier) add(xid int64, mask uint64) {
	n.mu.Lock()
	n.added++
	if _, ok := n.pending[xid]; ok || len(n.pending) < maxPending {
		n.pending[xid] |= mask
	} else if !n.full {
		n.full = true
		n.log.Warn("notifier has 100,000 unannounced transactions (the database away?); dispatchers' sweeps find their messages")
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// maxWait bounds the wait between two checks while only open transactions
// are pending (a long batch job, a session idle in a transaction): the
// Notifier backs off to it instead of asking every 500 µs for ever.
const maxWait = 50 * time.Millisecond

// backoff is the wait before the next question when only transactions
// open for at least openFor are pending, none new: a quarter of openFor,
// at least interval and at most limit (or interval, if that is longer).
// run then keeps BusyInterval between questions too. One left open is
// asked about less and less often, where doubling the wait at each
// question announced a transaction up to its open time late. A
// transaction seen running its COMMIT is not backed off from for its
// first commitWatch (commitsUnderWay). An enqueue ends the wait early
// (see run).
func backoff(openFor, interval, limit time.Duration) time.Duration {
	return min(max(openFor/4, interval), max(limit, interval))
}

// openRetries is how many questions about one open transaction may come
// after Interval, not BusyInterval, when no enqueue came since the last
// one: the usual case is a COMMIT still waiting for its WAL flush, which a
// question 2 ms later announced late. Counted per transaction, so a
// long-open one gets no quicker questions after its first few.
const openRetries = 3

func (n *Notifier) run(stop, done chan struct{}) {
	defer close(done)
	short := newShortTimer()
	defer short.close()
	var last time.Time // when the last question went out
	for {
		select {
		case <-n.kick:
		case <-stop:
			_, _, _ = n.flush(context.Background())
			return
		}
		if n.pendingCount() == 0 {
			// A kick left by an enqueue that the last question answered:
			// nothing to ask, and no reason to count it as a question
			// (the next enqueue after a quiet spell waits Interval only).
			continue
		}
		// Enqueue hands over a transaction before it commits: wait a beat
		// before asking, so that one question usually finds it committed
		// (and more transactions join it).
		wait := n.interval
		seen := n.addCount()
		reask := false      // the next question is about a commit under way
		backingOff := false // only long-open transactions are pending
		for left := 1; left > 0; {
			if gap := n.busy - time.Since(last); gap > wait && !reask {
				wait = gap
			}
			// A backoff is for transactions left open (a batch job, a
			// session idle in a transaction): a new enqueue ends it, or it
			// would hold back every other announcement by up to maxWait,
			// and is asked about as when the Notifier is busy.
			var kick chan struct{}
			if backingOff {
				kick = n.kick
			}
			ok, kicked := pause(short, wait, stop, kick)
			if ok && kicked {
				ok, _ = pause(short, max(n.interval, n.busy-time.Since(last)), stop, nil)
			}
			if !ok {
				_, _, _ = n.flush(context.Background())
				return
			}
			var (
				rep flushReport
				err error
			)
			// A kick waiting now comes from an enqueue that this question
			// covers (add records it before it kicks): left behind, it
			// would end the next backoff for nothing.
			select {
			case <-n.kick:
			default:
			}
			last = time.Now()
			left, rep, err = n.flush(context.Background())
			reask, backingOff = false, false
			switch {
			case err != nil:
				n.log.Warn("cannot ask which enqueues committed; dispatchers' sweeps find them meanwhile", "error", err)
				wait = min(max(wait*2, time.Millisecond), time.Second)
			case n.addCount() != seen: // enqueues keep coming: BusyInterval
				wait = n.interval
			case rep.young > 0: // nothing new, a commit under way: Interval
				wait, reask = n.interval, true
			case rep.committed+rep.aborted > 0:
				wait = n.interval
			case n.commitsUnderWay(rep.watch): // a slow COMMIT: asked about as when busy
				wait = n.interval
			default: // only long-open transactions, none new: ask less often
				wait, backingOff = backoff(rep.openFor, n.interval, n.backoffCap), true
				if n.backedOff != nil {
					select { // tests only; never block the notifier on them
					case n.backedOff <- [2]time.Duration{rep.openFor, wait}:
					default:
					}
				}
			}
			seen = n.addCount()
		}
	}
}

// pause waits d, and reports false if stop closed first. A wait under a
// millisecond is short's (see shortTimer), and stop is looked at after it.
// A longer one also ends early on a receive from kick (nil: never), and
// reports kicked.
func pause(short shortTimer, d time.Duration, stop, kick chan struct{}) (ok, kicked bool) {
	if d < time.Millisecond {
		short.sleep(d)
		select {
		case <-stop:
			return false, false
		default:
			return true, false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, false
	case <-stop:
		return false, false
	case <-kick:
		return true, true
	}
}

func (n *Notifier) pendingCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}

func (n *Notifier) addCount() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.added
}

// flush announces the lanes of the pending transactions that committed,
// forgets those that ended, and reports how many are still pending and
// what it found. Lanes that a transaction added while the question was
// out (a batch whose later rows came after its commit) stay pending and go
// out with the next flush. A question that fails, even after some of its
// answer (its NOTIFY then went nowhere), changes nothing: every
// transaction it asked about stays pending for the next one. (An error
// that lasts, such as a full NOTIFY queue, so keeps up to maxPending
// transactions, asked about at each retry; the dispatchers' sweeps find
// their messages meanwhile.)
func (n *Notifier) flush(ctx context.Context) (left int, rep flushReport, err error) {
	n.mu.Lock()
	if len(n.pending) == 0 {
		n.mu.Unlock()
		return 0, rep, nil
	}
	xids := make([]int64, 0, len(n.pending))
	masks := make([]int64, 0, len(n.pending))
	asked := make(map[int64]uint64, len(n.pending))
	for x, m := range n.pending {
		xids, masks, asked[x] = append(xids, x), append(masks, int64(m)), m
	}
	n.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, n.questionTimeout)
	defer cancel()
	rows, err := n.db.Query(ctx, n.query, xids, masks, n.channel)
	if err != nil {
		return len(xids), flushReport{}, err
	}
	if n.asking != nil {
		n.asking()
	}
	// The answer is read before the lock is taken: add, which every
	// enqueue calls, must not wait for its rows (past the server's send
	// buffer, 8 kB, they come as the question runs) or its commit.
	type answer struct {
		x      int64
		status string
	}
	var (
		answers = make([]answer, 0, len(xids)) // a row per transaction
		a       answer
		sent    int64
	)
	_, err = pgx.ForEachRow(rows, []any{&a.x, &a.status, &sent}, func() error {
		answers = append(answers, a)
		return nil
	})
	if err != nil {
		return len(xids), flushReport{}, err
	}
	now := time.Now()
	stuck := false // a COMMIT has run for commitWatch
	n.mu.Lock()
	for _, a := range answers {
		x := a.x
		switch a.status {
		case "in progress":
			o, seen := n.open[x]
			if !seen {
				o.since = now
			}
			o.asked++
			n.open[x] = o
			if rep.inProgress++; rep.inProgress == 1 || now.Sub(o.since) < rep.openFor {
				rep.openFor = now.Sub(o.since)
			}
			switch {
			case o.asked <= openRetries:
				rep.young++
			case o.gone: // prepared: not watched, and not stuck either
			case o.committing.IsZero() || now.Sub(o.committing) < commitWatch:
				rep.watch = append(rep.watch, x)
			default:
				stuck = true
			}
			continue
		case "committed":
			rep.committed++
		default: // aborted, or too old to tell
			rep.aborted++
		}
		// Bits added while the question was out keep the whole mask
		// pending, for the next question: the new bits alone could be a
		// lane without its destination, or the reverse.
		if n.pending[x] == asked[x] {
			delete(n.pending, x)
			delete(n.open, x)
		}
	}
	if stuck {
		// COMMITs that wait this long (a synchronous standby gone) keep
		// coming while it lasts: each new one asked about every
		// BusyInterval for its first second kept the Notifier at 300
		// questions a second (an operator's trial), where backing off
		// asks 20 to 40.
		rep.watch = nil
	}
	left = len(n.pending)
	n.mu.Unlock()
	if n.flushed != nil {
		rep.at = time.Now()
		select { // tests only; never block the notifier on them
		case n.flushed <- rep:
		default:
		}
	}
	return left, rep, nil
}
