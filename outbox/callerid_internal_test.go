package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// A producer that found no caller_id column looks again once a minute has
// passed since (docs/design.md: it marks ids within a minute of migration
// 16), not before; one that found it never looks again.
func TestCallerIDIsLookedForAgainAfterAMinute(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t) // at the latest version: the column is there
	ctx := context.Background()
	o, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func() {
		t.Helper()
		if _, err := o.Enqueue(ctx, pool, Message{Destination: "crm", Payload: []byte(`{}`), ID: uuid.Must(uuid.NewV7())}); err != nil {
			t.Fatal(err)
		}
	}
	marked := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages WHERE caller_id`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// As if a look 59 s ago had found none: no look yet, the id unmarked.
	o.callerID.Store(-time.Now().Add(-callerIDRecheck + time.Second).UnixNano())
	enqueue()
	if n := marked(); n != 0 || o.callerID.Load() >= 0 {
		t.Fatalf("within the minute: %d marked, state %d; want 0 and no new look", n, o.callerID.Load())
	}
	// A minute and a second ago: it looks, finds the column, marks.
	o.callerID.Store(-time.Now().Add(-callerIDRecheck - time.Second).UnixNano())
	enqueue()
	if n := marked(); n != 1 || o.callerID.Load() != 1 {
		t.Fatalf("after the minute: %d marked, state %d; want 1 and the column seen", n, o.callerID.Load())
	}
	enqueue()
	if n := marked(); n != 2 {
		t.Fatalf("%d marked, want 2", n)
	}
}

// A statement under an older snapshot (REPEATABLE READ) sees migration
// 16's index as its transaction began: one that began before the index was
// valid does not mark, and the next statement, READ COMMITTED, does. And a
// look for the column from a transaction open for a second or more says
// nothing of now: its "no" is not kept (it was, for a minute: every
// caller's id of the process unmarked meanwhile, found by review).
func TestAnOldSnapshotDoesNotTurnMarkingOff(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	exec := func(q string) {
		t.Helper()
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	o, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	marked := func(db DB) bool {
		t.Helper()
		e, err := o.Enqueue(ctx, db, Message{Destination: "crm", Payload: []byte(`{}`), ID: uuid.Must(uuid.NewV7())})
		if err != nil {
			t.Fatal(err)
		}
		var m bool
		if err := pool.QueryRow(ctx, `SELECT coalesce((SELECT caller_id FROM outboxd.outbox_messages WHERE id = $1), false)`, e.ID).Scan(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	begin := func() pgx.Tx {
		t.Helper()
		rr, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rr.Rollback(ctx) })
		if _, err := rr.Exec(ctx, `SELECT 1 FROM outboxd.outbox_keys LIMIT 1`); err != nil { // its snapshot
			t.Fatal(err)
		}
		return rr
	}

	exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'outboxd.outbox_messages_caller_key_idx'::regclass`)
	rr := begin()
	exec(`UPDATE pg_index SET indisvalid = true WHERE indexrelid = 'outboxd.outbox_messages_caller_key_idx'::regclass`)
	if marked(rr) {
		t.Fatal("marked under a snapshot from before the index was valid")
	}
	if err := rr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !marked(pool) {
		t.Fatal("the next enqueue, READ COMMITTED, did not mark")
	}

	// The column gone, a transaction takes its snapshot, and a second
	// later (older than the answer may be kept) the column is back.
	o.callerID.Store(0)
	exec(`ALTER TABLE outboxd.outbox_messages DROP COLUMN caller_id`)
	rr = begin()
	time.Sleep(1100 * time.Millisecond)
	exec(`ALTER TABLE outboxd.outbox_messages ADD COLUMN caller_id boolean NOT NULL DEFAULT false;
		CREATE UNIQUE INDEX outbox_messages_caller_key_idx ON outboxd.outbox_messages (destination, idempotency_key)
			WHERE idempotency_key <> id::text OR caller_id`)
	if marked(rr) {
		t.Fatal("marked under a snapshot without the column")
	}
	if o.callerID.Load() != 0 {
		t.Fatalf("the old snapshot's answer was kept: state %d", o.callerID.Load())
	}
	if err := rr.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !marked(pool) {
		t.Fatal("the next enqueue, READ COMMITTED, did not mark")
	}
}
