package outbox

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/wakeup"
)

// notifierBundle listens on the outbox channel of a fresh database and
// runs a started Notifier (configured by cfg; nil: defaults) whose flushes
// the test can follow.
type notifierBundle struct {
	ob   *Outbox
	n    *Notifier
	pool interface {
		Begin(context.Context) (pgx.Tx, error)
	}
	payloads chan string
	url      string // the fresh database's
}

func newNotifierBundle(t *testing.T, cfg *NotifierConfig, prepare ...func(*Notifier)) notifierBundle {
	t.Helper()
	return newNotifierBundleAt(t, pgtest.URL(t), cfg, prepare...)
}

// newNotifierBundleAt is newNotifierBundle on the migrated database url.
func newNotifierBundleAt(t *testing.T, url string, cfg *NotifierConfig, prepare ...func(*Notifier)) notifierBundle {
	t.Helper()
	pool := pgtest.Connect(t, url)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `LISTEN outboxd_outbox`); err != nil {
		t.Fatal(err)
	}
	payloads := make(chan string, 100)
	lctx, cancel := context.WithCancel(ctx)
	listening := make(chan struct{})
	t.Cleanup(func() { cancel(); <-listening; conn.Close(context.Background()) })
	go func() {
		defer close(listening)
		for {
			n, err := conn.WaitForNotification(lctx)
			if err != nil {
				return
			}
			select {
			case payloads <- n.Payload:
			case <-lctx.Done():
				return
			}
		}
	}()
	n, err := NewNotifier(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.flushed = make(chan flushReport, 1000)
	n.backedOff = make(chan [2]time.Duration, 1000)
	for _, p := range prepare {
		p(n)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ob, err := New(&Config{Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	return notifierBundle{ob: ob, n: n, pool: pool, payloads: payloads, url: url}
}

// waitFlush waits for a flush that saw the given counts (at least).
func (b notifierBundle) waitFlush(t *testing.T, what string, ok func(flushReport) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-b.n.flushed:
			if ok(r) {
				return
			}
		case <-deadline:
			t.Fatalf("no flush that saw %s", what)
		}
	}
}

// openEnqueue enqueues msg in a transaction it leaves open (rolled back at
// the end of the test).
func (b notifierBundle) openEnqueue(t *testing.T, msg Message) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := b.ob.Enqueue(ctx, tx, msg); err != nil {
		t.Fatal(err)
	}
	return tx
}

// commitOne enqueues one message in a transaction of its own and commits.
func (b notifierBundle) commitOne(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ob.Enqueue(ctx, tx, Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// sentinel sends a NOTIFY and checks it is the next one heard: nothing was
// announced before it.
func (b notifierBundle) sentinel(t *testing.T) {
	t.Helper()
	if _, err := b.n.db.Exec(context.Background(), `SELECT pg_notify('outboxd_outbox', 'sentinel')`); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.payloads:
		if p != "sentinel" {
			t.Fatalf("announced too early: %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sentinel notification never came")
	}
}

// laneBit reports whether payload, a Notifier's announcement, names lane
// of destination.
func laneBit(t *testing.T, payload string, lane int16, destination string) bool {
	t.Helper()
	lanes, dests := wakeup.Parse(payload)
	if !strings.HasPrefix(payload, "m") || lanes == wakeup.All || dests == wakeup.All {
		t.Fatalf("payload %q is not a lane mask with a destination filter", payload)
	}
	return lanes&(1<<uint(lane)) != 0 && dests&wakeup.DestBit(destination) != 0
}

// With a Notifier, the enqueueing transaction sends no NOTIFY (it would
// serialise every producer's commit); the Notifier announces the lane only
// once the transaction committed: while it is open, flushes see it in
// progress and nothing is sent.
func TestNotifierAnnouncesOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	ctx := context.Background()
	tx := b.openEnqueue(t, Message{Destination: "crm", OrderingKey: "deal-1", Payload: []byte(`{}`)})
	var lane int16
	if err := tx.QueryRow(ctx, `SELECT lane FROM outboxd.outbox_messages`).Scan(&lane); err != nil {
		t.Fatal(err)
	}
	b.waitFlush(t, "the open transaction", func(r flushReport) bool { return r.inProgress == 1 })
	// Notifications arrive in order: the sentinel comes first only if
	// nothing was announced for the open transaction.
	b.sentinel(t)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.payloads:
		if !laneBit(t, p, lane, "crm") {
			t.Fatalf("payload %q does not name lane %d of crm", p, lane)
		}
		// Only crm's: another destination's lanes are not woken for it.
		if _, dests := wakeup.Parse(p); dests != wakeup.DestBit("crm") {
			t.Fatalf("payload %q names destinations %#x, want only crm's bit %#x", p, dests, wakeup.DestBit("crm"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after the commit")
	}
}

// A rolled-back enqueue is never announced: the Notifier forgets it. (The
// sentinel NOTIFY proves the channel is quiet: notifications arrive in
// order, so had one been sent for the rollback, it would come first.)
func TestNotifierForgetsRollbacks(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	ctx := context.Background()
	tx := b.openEnqueue(t, Message{Destination: "crm", Payload: []byte(`{}`)})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitFlush(t, "the rollback", func(r flushReport) bool { return r.aborted == 1 })
	b.sentinel(t)
	b.n.mu.Lock()
	defer b.n.mu.Unlock()
	if len(b.n.pending) != 0 {
		t.Fatalf("%d transactions still pending", len(b.n.pending))
	}
}

// While only open transactions are pending (a long batch, a session idle in
// a transaction), the Notifier backs off to one check per 50 ms (maxWait)
// instead of asking every 500 µs: at most about 26 checks in a second,
// where it made 1,700 before.
func TestNotifierBacksOffOnOpenTransactions(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	b.openEnqueue(t, Message{Destination: "crm", Payload: []byte(`{}`)})
	b.waitFlush(t, "the open transaction", func(r flushReport) bool { return r.inProgress == 1 })
	flushes := 0
	window := time.After(time.Second)
	for done := false; !done; {
		select {
		case <-b.n.flushed:
			flushes++
		case <-window:
			done = true
		}
	}
	if flushes > 40 {
		t.Fatalf("%d checks in one second for one open transaction; want at most about 40 (a quarter of its open time apart, at least BusyInterval, then one per %s)", flushes, maxWait)
	}
	t.Logf("%d checks in one second", flushes)
}

// While only open transactions are pending, the wait before the next
// question is at most a quarter of how long the youngest has been open
// (or Interval): a COMMIT that takes d (a slow WAL flush) is announced
// within about d/4 of it. Doubling the wait at each question, as the
// Notifier did, announced a 20 ms commit up to 13 ms late. And it still
// backs off: a transaction open for 200 ms or more is asked about once per
// maxWait.
func TestNotifierBackoffIsAQuarterOfHowLongItWasOpen(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	b.openEnqueue(t, Message{Destination: "crm", Payload: []byte(`{}`)})
	window := time.After(time.Second)
	var waits [][2]time.Duration
	for done := false; !done; {
		select {
		case w := <-b.n.backedOff:
			waits = append(waits, w)
		case <-window:
			done = true
		}
	}
	if len(waits) < 5 {
		t.Fatalf("%d backoff waits in a second with one transaction open", len(waits))
	}
	for _, w := range waits {
		openFor, wait := w[0], w[1]
		if limit := max(openFor/4, b.n.interval); wait > limit {
			t.Fatalf("waits %s after a transaction was seen open for %s; want at most a quarter of that, or Interval (%s)", wait, openFor, b.n.interval)
		}
		if wait < b.n.interval {
			t.Fatalf("waits %s, less than Interval (%s)", wait, b.n.interval)
		}
		if openFor >= 4*maxWait && wait != maxWait {
			t.Fatalf("waits %s after a transaction was seen open for %s; want maxWait (%s)", wait, openFor, maxWait)
		}
	}
	last := waits[len(waits)-1]
	t.Logf("%d backoff waits; the last %s after %s open", len(waits), last[1], last[0].Round(time.Millisecond))
}

// Lanes (and destinations) that a transaction adds while a check is out
// (a batch whose later rows come after its commit) are announced by the
// next check, not lost: a new lane of a destination already asked about,
// and a new destination in a lane already asked about, each in a payload
// that names both its lane and its destination. (The announcement used to
// carry the new bits alone: a lane without its destination, or the
// reverse, which woke nothing.)
func TestNotifierKeepsLanesAddedDuringACheck(t *testing.T) {
	t.Parallel()
	// dest-41's bit is the 32nd: its mask is a negative bigint in the
	// question, which must still come out as that bit.
	if wakeup.DestBit("dest-41") != 1<<31 {
		t.Fatalf("dest-41's bit is %#x", wakeup.DestBit("dest-41"))
	}
	for _, c := range []struct {
		name       string
		first, add uint64
	}{
		{"new lane", wakeup.Mask(3, "sink"), wakeup.Mask(7, "sink")},
		{"new destination", wakeup.Mask(3, "sink"), wakeup.Mask(3, "dest-41")},
		{"both new", wakeup.Mask(3, "sink"), wakeup.Mask(7, "dest-41")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := newNotifierBundle(t, nil)
			var xid int64
			if err := b.n.db.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
				t.Fatal(err) // a transaction that has committed by now
			}
			var once sync.Once
			b.n.asking = func() { // runs on the notifier's goroutine, mid-flush
				once.Do(func() {
					b.n.mu.Lock()
					b.n.pending[xid] |= c.add
					b.n.mu.Unlock()
				})
			}
			b.n.add(xid, c.first)
			var heard []string
			named := func(want uint64) bool {
				for _, p := range heard {
					if lanes, dests := wakeup.Parse(p); lanes&uint32(want) != 0 && dests&uint32(want>>32) != 0 {
						return true
					}
				}
				return false
			}
			for !named(c.first) || !named(c.add) {
				select {
				case p := <-b.payloads:
					heard = append(heard, p)
				case <-time.After(10 * time.Second):
					t.Fatalf("heard %q: not both %#x and %#x", heard, c.first, c.add)
				}
			}
		})
	}
}

// While enqueues keep coming, the Notifier asks at most once per
// BusyInterval (the doc's promise), each question answering for every
// transaction of its interval; and none of them is left unannounced.
func TestNotifierAsksAtMostOncePerBusyInterval(t *testing.T) {
	t.Parallel()
	const busy = 100 * time.Millisecond
	b := newNotifierBundle(t, &NotifierConfig{BusyInterval: busy})
	var (
		flushes, committed int
		txs                int
	)
	collect := func() {
		for {
			select {
			case r := <-b.n.flushed:
				flushes++
				committed += r.committed
			default:
				return
			}
		}
	}
	start := time.Now()
	for time.Since(start) < time.Second {
		b.commitOne(t)
		txs++
		collect()
	}
	elapsed := time.Since(start)
	// Questions start at least busy apart: one at the start, then one per
	// busy at most, and one for the last transactions; plus up to
	// openRetries quick ones about the first and the last transaction, if
	// its COMMIT was still under way when no other enqueue came.
	if limit := int(elapsed/busy) + 2 + 2*openRetries; flushes > limit {
		t.Fatalf("%d questions in %s of steady enqueues (%d transactions); want at most %d with BusyInterval %s",
			flushes, elapsed.Round(time.Millisecond), txs, limit, busy)
	}
	deadline := time.After(10 * time.Second)
	for committed < txs {
		select {
		case r := <-b.n.flushed:
			committed += r.committed
		case <-deadline:
			t.Fatalf("%d of %d committed transactions announced", committed, txs)
		}
	}
	if txs < 10 {
		t.Fatalf("only %d transactions in a second: the test proves nothing", txs)
	}
	t.Logf("%d transactions, %d questions in %s", txs, flushes, elapsed.Round(time.Millisecond))
}

// A kick left behind by an enqueue that an earlier question already
// answered is not a question: an enqueue after a quiet spell longer than
// BusyInterval is asked about after Interval, not a whole BusyInterval
// later (it was, when the empty round counted as a question). The bound
// is generous: Interval is 500 µs, BusyInterval here 500 ms.
func TestNotifierLeftoverKickIsNotAQuestion(t *testing.T) {
	t.Parallel()
	const busy = 500 * time.Millisecond
	// Interval 100 ms, not 500 µs: a question that comes before the commit
	// is visible (a loaded machine) finds it in progress, and the next one
	// rightly waits BusyInterval, which this test would take for the bug.
	b := newNotifierBundle(t, &NotifierConfig{BusyInterval: busy, Interval: 100 * time.Millisecond})
	commit := func() { b.commitOne(t) }
	commit()
	b.waitFlush(t, "the first enqueue", func(r flushReport) bool { return r.committed == 1 })
	commit() // held until BusyInterval after the first question...
	commit() // ...and this one arrives meanwhile, leaving a kick behind
	b.waitFlush(t, "both", func(r flushReport) bool { return r.committed == 2 })
	time.Sleep(busy + 50*time.Millisecond) // a quiet spell longer than BusyInterval
	start := time.Now()
	commit()
	b.waitFlush(t, "the enqueue after the quiet spell", func(r flushReport) bool { return r.committed == 1 })
	if took := time.Since(start); took > busy/2 {
		t.Fatalf("announced %s after its commit, after a quiet spell longer than BusyInterval (%s): the leftover kick counted as a question", took.Round(time.Millisecond), busy)
	}
}

// A question that finds only an open transaction (usually a COMMIT still
// waiting for its WAL flush), with nothing enqueued since, is asked again
// after Interval, not BusyInterval, openRetries times; then the Notifier
// backs off and keeps BusyInterval between questions again. Generous
// bounds: BusyInterval here is 2 s, Interval 500 µs.
func TestNotifierAsksAgainSoonAboutAnOpenTransaction(t *testing.T) {
	t.Parallel()
	const busy = 2 * time.Second
	b := newNotifierBundle(t, &NotifierConfig{BusyInterval: busy})
	b.openEnqueue(t, Message{Destination: "crm", Payload: []byte(`{}`)})
	var at []time.Time
	window := time.After(busy + busy/2)
	for done := false; !done; {
		select {
		case r := <-b.n.flushed:
			if r.inProgress == 1 {
				at = append(at, r.at)
			}
		case <-window:
			done = true
		}
	}
	if len(at) < 2+openRetries {
		t.Fatalf("%d questions in %s about one open transaction; want %d soon and one BusyInterval later", len(at), busy+busy/2, 1+openRetries)
	}
	if span := at[openRetries].Sub(at[0]); span >= busy/2 {
		t.Fatalf("the %d questions after the first took %s: they waited for BusyInterval (%s)", openRetries, span.Round(time.Millisecond), busy)
	}
	if gap := at[1+openRetries].Sub(at[openRetries]); gap < busy/2 {
		t.Fatalf("after %d retries the next question came %s later, not a BusyInterval (%s)", openRetries, gap.Round(time.Millisecond), busy)
	}
}

// The quick questions are counted per transaction: a transaction left open
// (a batch job) is asked about quickly only at first, not again after each
// other enqueue that a question resolves (it was: three quick questions
// more after every one). Interval here is 50 ms and BusyInterval 100 ms,
// so each other transaction has committed before it is asked about; one
// commits every 300 ms. Per period: the question that announces it, then
// about two while backing off; the old count added three quick ones.
func TestNotifierQuickQuestionsArePerTransaction(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, &NotifierConfig{Interval: 50 * time.Millisecond, BusyInterval: 100 * time.Millisecond})
	b.openEnqueue(t, Message{Destination: "crm", Payload: []byte(`{}`)})
	b.waitFlush(t, "the open transaction", func(r flushReport) bool { return r.inProgress == 1 })
	time.Sleep(500 * time.Millisecond) // its quick questions are spent
	for len(b.n.flushed) > 0 {
		<-b.n.flushed
	}
	const periods = 8
	questions := 0
	for range periods {
		b.commitOne(t)
		period := time.After(300 * time.Millisecond)
		for done := false; !done; {
			select {
			case <-b.n.flushed:
				questions++
			case <-period:
				done = true
			}
		}
	}
	if limit := periods*3 + 5; questions > limit { // slack: a COMMIT slow enough to be asked about twice
		t.Fatalf("%d questions in %d periods of 300 ms with one transaction left open; want at most %d", questions, periods, limit)
	}
	t.Logf("%d questions in %d periods", questions, periods)
}

// The backoff is never shorter than Interval, even an Interval configured
// above maxWait (a Notifier that backs off must not ask more often than
// it would otherwise), and never longer than maxWait below that.
func TestBackoffStaysWithinItsBounds(t *testing.T) {
	for _, c := range []struct{ openFor, interval, want time.Duration }{
		{2 * time.Millisecond, 500 * time.Microsecond, 500 * time.Microsecond},
		{40 * time.Millisecond, 500 * time.Microsecond, 10 * time.Millisecond},
		{time.Hour, 500 * time.Microsecond, maxWait},
		{time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond},
		{time.Hour, 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		if got := backoff(c.openFor, c.interval, maxWait); got != c.want {
			t.Errorf("backoff(open for %s, Interval %s) = %s, want %s", c.openFor, c.interval, got, c.want)
		}
	}
}

// An enqueue while the Notifier backs off for a long-open transaction is
// not held back by the backoff: it is asked about after Interval (and
// BusyInterval after the last question), not once the backoff ends (one
// session left idle in a transaction delayed every other announcement by
// up to 50 ms). The backoff here is lengthened to 2 s, so that the test
// can tell the two apart on a loaded machine.
func TestNotifierBackoffDoesNotHoldBackANewEnqueue(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil, func(n *Notifier) { n.backoffCap = 2 * time.Second })
	b.openEnqueue(t, Message{Destination: "crm", Payload: []byte(`{}`)})
	timeout := time.After(30 * time.Second)
	for long := false; !long; {
		select {
		case w := <-b.n.backedOff:
			long = w[1] >= 800*time.Millisecond
		case <-timeout:
			t.Fatal("the Notifier never backed off to 800 ms for an open transaction")
		}
	}
	start := time.Now() // a wait of 800 ms or more has just begun
	b.commitOne(t)
	b.waitFlush(t, "the new enqueue", func(r flushReport) bool { return r.committed == 1 })
	if took := time.Since(start); took >= 400*time.Millisecond {
		t.Fatalf("a new enqueue was announced %s after it, during a backoff of 800 ms or more: the backoff held it back", took.Round(time.Millisecond))
	}
}
