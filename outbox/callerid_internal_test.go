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

// A look from a REPEATABLE READ transaction sees the catalog as that
// transaction began: finding no valid index there says nothing of now, so
// it is not kept (it was, for a minute: every caller's id of the process
// unmarked meanwhile, found by review).
func TestAnOldSnapshotDoesNotTurnMarkingOff(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	setValid := func(v bool) {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE pg_index SET indisvalid = $1 WHERE indexrelid = 'outboxd.outbox_messages_caller_key_idx'::regclass`, v); err != nil {
			t.Fatal(err)
		}
	}
	setValid(false)
	rr, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rr.Rollback(ctx) }()
	if _, err := rr.Exec(ctx, `SELECT 1 FROM outboxd.outbox_keys LIMIT 1`); err != nil { // its snapshot
		t.Fatal(err)
	}
	setValid(true)
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
		if err := db.QueryRow(ctx, `SELECT caller_id FROM outboxd.outbox_messages WHERE id = $1`, e.ID).Scan(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if marked(rr) {
		t.Fatal("marked under a snapshot from before the index was valid")
	}
	if !marked(pool) {
		t.Fatal("the next enqueue, READ COMMITTED, did not mark: the old snapshot's answer was kept")
	}
}
