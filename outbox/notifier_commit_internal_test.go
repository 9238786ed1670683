package outbox

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// slowCommitSQL makes a COMMIT wait: the deferred trigger of t_slow locks
// the row of gate its row names, which the test holds. It stands for any
// COMMIT that takes long (a slow WAL flush, a synchronous standby's
// answer): the session is active in its COMMIT, as it is then.
const slowCommitSQL = `
CREATE TABLE gate (id int PRIMARY KEY);
INSERT INTO gate VALUES (1), (2);
CREATE TABLE t_slow (x int);
CREATE FUNCTION gate_wait() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM 1 FROM gate WHERE id = NEW.x FOR UPDATE; RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER t_slow_gate AFTER INSERT ON t_slow
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gate_wait()`

// slowCommit is a transaction that enqueued and whose COMMIT waits for
// the gate.
type slowCommit struct {
	lane int16
	gate pgx.Tx // on a connection of its own: the bundle's pool is small
	done chan struct{}
	err  *error // the COMMIT's outcome, once done is closed
	// began: just before the COMMIT was sent; no question can find it
	// committing before.
	began time.Time
}

// installGates creates slowCommitSQL's tables in the bundle's database.
func installGates(t *testing.T, b notifierBundle) {
	t.Helper()
	if _, err := b.n.db.Exec(context.Background(), slowCommitSQL); err != nil {
		t.Fatal(err)
	}
}

// startSlowCommit enqueues for crm in a transaction and commits it behind
// gate id (installGates), and returns once its session is seen waiting in
// its COMMIT (pg_stat_activity, not a sleep).
func startSlowCommit(t *testing.T, b notifierBundle, id int) slowCommit {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	gate, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Exec(ctx, `SELECT 1 FROM gate WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	tx := b.openEnqueue(t, Message{Destination: "crm", OrderingKey: fmt.Sprintf("deal-%d", id), Payload: []byte(`{}`)})
	s := slowCommit{gate: gate, done: make(chan struct{}), err: new(error)}
	var pid int32
	if err := tx.QueryRow(ctx, `SELECT lane, pg_backend_pid() FROM outboxd.outbox_messages`).Scan(&s.lane, &pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t_slow VALUES ($1)`, id); err != nil {
		t.Fatal(err)
	}
	s.began = time.Now()
	go func() { *s.err = tx.Commit(context.Background()); close(s.done) }()
	// Before openEnqueue's rollback (cleanups run last first): the
	// transaction's connection is not used while its COMMIT runs.
	t.Cleanup(func() { _ = gate.Rollback(context.Background()); <-s.done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := b.n.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE pid = $1 AND state = 'active' AND wait_event_type = 'Lock' AND query ~* '^commit')`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the COMMIT never waited for the gate")
		}
		time.Sleep(time.Millisecond)
	}
}

// open lets the COMMIT end, and waits until it has.
func (s slowCommit) open(t *testing.T) {
	if err := s.gate.Rollback(context.Background()); err != nil {
		t.Error(err)
	}
	<-s.done
	if *s.err != nil {
		t.Error(*s.err)
	}
}

// announced waits for the announcement of the slow commit's lane.
func (s slowCommit) announced(t *testing.T, b notifierBundle) {
	t.Helper()
	select {
	case p := <-b.payloads:
		if !laneBit(t, p, s.lane, "crm") {
			t.Fatalf("payload %q does not name lane %d of crm", p, s.lane)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after the commit")
	}
}

// A transaction whose COMMIT is under way is asked about every
// BusyInterval, not backed off from (a quarter of its open time, up to
// maxWait): backing off announced a COMMIT that took d up to d/4 after it
// ended, which under slow WAL flushes (a checkpoint, a busy disk) put tens
// of milliseconds on commit-to-delivery latency. Past commitWatch (1 s
// from when a question first found it committing) a COMMIT still running
// is stuck, not slow: the Notifier backs off as before. Once the COMMIT
// ends, the lane is announced.
func TestNotifierDoesNotBackOffFromACommitUnderWay(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	installGates(t, b)
	s := startSlowCommit(t, b, 1)
	// A flush that began after the COMMIT was seen waiting: every backoff
	// decided before it has been sent by then.
	seen := time.Now()
	b.waitFlush(t, "the committing transaction", func(r flushReport) bool { return r.inProgress == 1 && r.at.After(seen) })
	drainBackoffs(b.n)
	for i := 0; i < 20; i++ {
		b.waitFlush(t, "the committing transaction", func(r flushReport) bool { return r.inProgress == 1 })
	}
	// The watch began after the COMMIT did: under commitWatch since then,
	// it still runs.
	if took := time.Since(s.began); took < commitWatch {
		if got := drainBackoffs(b.n); len(got) > 0 {
			t.Fatalf("backed off %s from a transaction in its COMMIT (sent %s ago; commitWatch %s)", got[0][1], took, commitWatch)
		}
	} else {
		t.Logf("the COMMIT and 20 questions took %s, past commitWatch (%s): not checked", took, commitWatch)
	}

	// Stuck past commitWatch: backed off as before, to maxWait.
	stuck := time.After(10 * time.Second)
	for backedOff := false; !backedOff; {
		select {
		case w := <-b.n.backedOff:
			if time.Since(s.began) < commitWatch {
				t.Fatalf("backed off %s from a transaction in its COMMIT for less than commitWatch (%s)", w[1], commitWatch)
			}
			if w[1] != maxWait {
				t.Fatalf("backed off %s from a COMMIT stuck past commitWatch, open for %s; want maxWait (%s)", w[1], w[0], maxWait)
			}
			backedOff = true
		case <-stuck:
			t.Fatalf("never backed off from a COMMIT stuck past commitWatch (%s)", commitWatch)
		}
	}
	s.open(t)
	s.announced(t, b)
}

// A COMMIT that ends while the question that finds its transaction open
// is out is not backed off from either: when pg_stat_activity is read
// next, no session holds the transaction, and the Notifier asks again at
// once. Asking only whether a session was in its COMMIT, it saw none,
// backed off up to maxWait, and announced the COMMIT 50 ms late (a
// review's test).
func TestNotifierDoesNotBackOffFromACommitThatEndedDuringTheQuestion(t *testing.T) {
	t.Parallel()
	var (
		armed atomic.Bool
		s     slowCommit
		ended = make(chan struct{})
	)
	b := newNotifierBundle(t, nil, func(n *Notifier) {
		n.asking = func() { // while a question is out
			if armed.CompareAndSwap(true, false) {
				s.open(t)
				close(ended)
			}
		}
	})
	installGates(t, b)
	s = startSlowCommit(t, b, 1)
	t.Cleanup(func() { armed.Store(false) }) // first: no hook during the cleanups
	// Past its quick questions, watched (asked every BusyInterval).
	for i := 0; i < openRetries+2; i++ {
		b.waitFlush(t, "the committing transaction", func(r flushReport) bool { return r.inProgress == 1 })
	}
	drainBackoffs(b.n)
	armed.Store(true)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("no question was asked while the COMMIT waited")
	}
	s.announced(t, b)
	// Within commitWatch of the COMMIT's start it was watched throughout
	// (past it, on a slow machine, it counts as stuck, rightly backed off
	// from). The question the hook holds took its snapshot before the
	// hook ran (at its Bind), so it found the transaction open.
	got := drainBackoffs(b.n)
	if took := time.Since(s.began); took >= commitWatch {
		t.Logf("the COMMIT was under way %s, past commitWatch (%s): not checked", took, commitWatch)
	} else if len(got) > 0 {
		t.Fatalf("backed off %s (open for %s) from a transaction whose COMMIT ended during the question", got[0][1], got[0][0])
	}
}

// While a COMMIT has been running for over commitWatch (a synchronous
// standby gone), the next ones are backed off from too: they likely wait
// for the same cause, and watching each new one for its first second kept
// the Notifier at 300 questions a second while they kept coming (an
// operator's trial). Both are announced once they end.
func TestNotifierBacksOffFromNewCommitsWhileOneIsStuck(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	installGates(t, b)
	first := startSlowCommit(t, b, 1)
	stuck := time.After(10 * time.Second)
	for backedOff := false; !backedOff; {
		select {
		case w := <-b.n.backedOff:
			backedOff = w[1] == maxWait
		case <-stuck:
			t.Fatalf("never backed off from a COMMIT stuck past commitWatch (%s)", commitWatch)
		}
	}
	second := startSlowCommit(t, b, 2)
	// Only what comes from now on counts (both channels are buffered).
	for len(b.n.flushed) > 0 {
		<-b.n.flushed
	}
	drainBackoffs(b.n)
	// Past the second's quick questions (openRetries), every question
	// ends in a backoff; watched, none would for a second.
	for i := 0; i < openRetries+4; i++ {
		b.waitFlush(t, "the second COMMIT", func(r flushReport) bool { return r.inProgress == 2 })
	}
	if got := drainBackoffs(b.n); len(got) < 2 {
		t.Fatalf("%d backoffs in %d questions with a COMMIT stuck and another under way; want the new one backed off from too", len(got), openRetries+4)
	}
	first.open(t)
	first.announced(t, b)
	second.open(t)
	second.announced(t, b)
}

// drainBackoffs returns the backoff waits received so far.
func drainBackoffs(n *Notifier) [][2]time.Duration {
	var got [][2]time.Duration
	for {
		select {
		case w := <-n.backedOff:
			got = append(got, w)
		default:
			return got
		}
	}
}
