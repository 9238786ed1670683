package outbox

import (
	"context"
	"testing"
	"time"
)

// slowCommitSQL makes a COMMIT wait: the deferred trigger of t_slow locks
// the row of gate, which the test holds. It stands for any COMMIT that
// takes long (a slow WAL flush, a synchronous standby's answer): the
// session is active in its COMMIT, as it is then.
const slowCommitSQL = `
CREATE TABLE gate (id int PRIMARY KEY);
INSERT INTO gate VALUES (1);
CREATE TABLE t_slow (x int);
CREATE FUNCTION gate_wait() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM 1 FROM gate WHERE id = 1 FOR UPDATE; RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER t_slow_gate AFTER INSERT ON t_slow
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gate_wait()`

// A transaction whose COMMIT is under way is asked about every
// BusyInterval, not backed off from (a quarter of its open time, up to
// maxWait): backing off announced a COMMIT that took d up to d/4 after it
// ended, which under slow WAL flushes (a checkpoint, a busy disk) put tens
// of milliseconds on commit-to-delivery latency. Past commitWatch (1 s) a
// COMMIT still running is stuck, not slow: the Notifier backs off as
// before. Once the COMMIT ends, the lane is announced.
func TestNotifierDoesNotBackOffFromACommitUnderWay(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	ctx := context.Background()
	if _, err := b.n.db.Exec(ctx, slowCommitSQL); err != nil {
		t.Fatal(err)
	}
	gate, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gate.Rollback(context.Background()) }()
	if _, err := gate.Exec(ctx, `SELECT 1 FROM gate WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	tx := b.openEnqueue(t, Message{Destination: "crm", OrderingKey: "deal-1", Payload: []byte(`{}`)})
	var (
		lane int16
		pid  int32
	)
	if err := tx.QueryRow(ctx, `SELECT lane, pg_backend_pid() FROM outboxd.outbox_messages`).Scan(&lane, &pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t_slow VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() { committed <- tx.Commit(context.Background()) }()

	// The COMMIT waits for the gate's lock (seen, not slept on).
	var seen time.Time
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := b.n.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE pid = $1 AND state = 'active' AND wait_event_type = 'Lock' AND query ~* '^commit')`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			seen = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the COMMIT never waited for the gate")
		}
		time.Sleep(time.Millisecond)
	}
	// A flush that began after the COMMIT was seen waiting: every backoff
	// decided before it has been sent by then.
	b.waitFlush(t, "the committing transaction", func(r flushReport) bool { return r.inProgress == 1 && r.at.After(seen) })
	drainBackoffs(b.n)
	for i := 0; i < 20; i++ {
		b.waitFlush(t, "the committing transaction", func(r flushReport) bool { return r.inProgress == 1 })
	}
	for _, w := range drainBackoffs(b.n) {
		if w[0] < commitWatch {
			t.Fatalf("backed off %s from a transaction in its COMMIT, open for %s (under commitWatch, %s)", w[1], w[0], commitWatch)
		}
	}

	// Stuck past commitWatch: backed off as before, to maxWait.
	stuck := time.After(10 * time.Second)
	for backedOff := false; !backedOff; {
		select {
		case w := <-b.n.backedOff:
			if w[0] < commitWatch {
				t.Fatalf("backed off %s from a transaction in its COMMIT, open for %s (under commitWatch, %s)", w[1], w[0], commitWatch)
			}
			if w[1] != maxWait {
				t.Fatalf("backed off %s from a COMMIT stuck for %s; want maxWait (%s)", w[1], w[0], maxWait)
			}
			backedOff = true
		case <-stuck:
			t.Fatalf("never backed off from a COMMIT stuck past commitWatch (%s)", commitWatch)
		}
	}

	if err := gate.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.payloads:
		if !laneBit(t, p, lane, "crm") {
			t.Fatalf("payload %q does not name lane %d of crm", p, lane)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after the commit")
	}
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
