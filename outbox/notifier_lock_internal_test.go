package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/wakeup"
)

// A producer's add never waits for the Notifier's question. An answer
// larger than the server's send buffer (8 kB: about 190 transactions in
// one question) starts to arrive while the question still runs, and it
// used to be read under the lock that add takes: every enqueue of the
// process then waited for the rest of the question and its commit (a
// NOTIFY's commit waits for a WAL flush). Here the end of a long answer
// waits for an advisory lock the test holds, observed in pg_locks, and an
// add must return meanwhile.
func TestAddDoesNotWaitForTheQuestion(t *testing.T) {
	t.Parallel()
	const key = 424242
	b := newNotifierBundle(t, nil, func(n *Notifier) {
		// The same question, then 1,000 rows (x 0: no transaction's,
		// nothing to forget) that fill the send buffer, then one that
		// comes only once the lock is free.
		n.query = `SELECT * FROM (` + notifierFlushSQL + `) q
			UNION ALL SELECT 0, 'forgotten', 0 FROM generate_series(1, 1000)
			UNION ALL SELECT 0, 'forgotten', 0 FROM (SELECT pg_advisory_xact_lock(424242)) l`
		// Until the test frees the lock: an add that waited for the
		// question would wait as long.
		n.questionTimeout = time.Minute
	})
	ctx := context.Background()
	pool := b.n.db.(*pgxpool.Pool)
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			_, _ = holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key)
		}
	}
	defer unlock()

	b.commitOne(t) // the question about it waits for the lock
	waiting := func() (w bool) {
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND objid = $1 AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`, key).Scan(&w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	deadline := time.Now().Add(30 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			t.Fatal("the Notifier's question never waited for the lock")
		}
		time.Sleep(time.Millisecond)
	}
	added := make(chan struct{})
	go func() {
		b.n.add(1, wakeup.Mask(0, "crm"))
		close(added)
	}()
	select {
	case <-added:
	case <-time.After(10 * time.Second): // only ends a failing test: the question waits a minute
		unlock()
		<-added
		t.Fatal("add waited for the Notifier's question")
	}
	if !waiting() {
		t.Fatal("the question ended before add returned: the test proved nothing")
	}
	unlock()
	b.waitFlush(t, "the question answered", func(r flushReport) bool { return r.committed > 0 })
}

// A question whose answer fails after its first rows (its NOTIFY then
// never goes out: the statement's transaction aborts) leaves every
// transaction it asked about pending, and the next question announces
// them. The rows read before the error used to be applied, and the
// committed transactions among them forgotten unannounced.
func TestAnAnswerCutShortIsAskedAgain(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil, func(n *Notifier) {
		// The first question fails after its rows; later ones add a
		// harmless row (x 0).
		n.query = `SELECT * FROM (` + notifierFlushSQL + `) q
			UNION ALL SELECT 0, 'forgotten', 0 WHERE 1 / (nextval('answer_cut_short') - 1) = 1`
	})
	ctx := context.Background()
	if _, err := b.n.db.Exec(ctx, `CREATE SEQUENCE answer_cut_short`); err != nil {
		t.Fatal(err)
	}
	// A transaction that has committed before the first question: that
	// question finds it committed (one still committing would be kept
	// pending by the code before too, and the test would prove nothing).
	var xid int64
	if err := b.n.db.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	b.n.add(xid, wakeup.Mask(5, "crm"))
	b.waitFlush(t, "the committed transaction announced", func(r flushReport) bool { return r.committed > 0 })
	select {
	case p := <-b.payloads:
		if lanes, _ := wakeup.Parse(p); lanes&(1<<5) == 0 {
			t.Fatalf("heard %q, not lane 5", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the committed transaction was never announced")
	}
}
