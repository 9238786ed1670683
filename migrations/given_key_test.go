package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// Migration 15 takes the messages keyed by their own ids out of the unique
// idempotency-key index, and 16 puts back those whose id the caller gave.
// This version's Enqueue finds a key in either form before them (so
// producers can be upgraded first), between them and after them, including
// messages stored on the other side; down puts the earlier index back over
// the rows; an invalid index a cut-short build left is rebuilt.
func TestGivenKeyIndexBothWays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, db, m := upTo(t, 15)
	pool := pgtest.Connect(t, url)
	const full, given = "outboxd.outbox_messages_idempotency_key_idx", "outboxd.outbox_messages_given_key_idx"
	const callerKey = "outboxd.outbox_messages_caller_key_idx"
	// long lives through every stage (it looked for caller_id once, at 14,
	// and does not look again within the test); each stage stores with a
	// new Outbox, which looks.
	long, err := outbox.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var ob *outbox.Outbox
	type stored struct {
		again outbox.Message // enqueued again: must find id
		id    uuid.UUID
	}
	var all []stored
	// enqueue stores one message of each form and checks that every one
	// stored so far, at any version, is found again and not stored twice.
	enqueue := func(stage string) {
		t.Helper()
		if ob, err = outbox.New(nil); err != nil {
			t.Fatal(err)
		}
		fresh, err := ob.Enqueue(ctx, pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(stage, err)
		}
		for _, m := range []outbox.Message{
			{Destination: "crm", Payload: []byte(`{}`), ID: uuid.Must(uuid.NewV7())},
			{Destination: "crm", Payload: []byte(`{}`), IdempotencyKey: "given-" + stage},
			{Destination: "crm", Payload: []byte(`{}`), Type: "lead", CausedBy: &outbox.EventRef{Source: "stripe", EventID: "evt-" + stage}},
			{Destination: "crm", Payload: []byte(`{}`), IdempotencyKey: "keyed-" + stage, OrderingKey: "contact-1"},
		} {
			e, err := ob.Enqueue(ctx, pool, m)
			if err != nil || e.Existing {
				t.Fatalf("%s: %+v %v", stage, e, err)
			}
			all = append(all, stored{m, e.ID})
		}
		all = append(all, stored{outbox.Message{Destination: "crm", Payload: []byte(`{}`), IdempotencyKey: fresh.IdempotencyKey}, fresh.ID})
		for _, s := range all {
			for _, o := range []*outbox.Outbox{ob, long} {
				e, err := o.Enqueue(ctx, pool, s.again)
				if err != nil || !e.Existing || e.ID != s.id {
					t.Fatalf("%s: %+v again: %+v %v, want %s", stage, s.again, e, err, s.id)
				}
			}
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM outboxd.outbox_messages`).Scan(&n); err != nil || n != len(all) {
			t.Fatalf("%s: %d rows (%v), want %d", stage, n, err, len(all))
		}
	}

	if _, err := m.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	if !indexValid(t, db, full) || indexValid(t, db, given) {
		t.Fatal("at version 14 only the full index should exist")
	}
	enqueue("at 14")
	// A build cut short left an invalid index of the same name.
	if _, err := db.Exec(`CREATE UNIQUE INDEX outbox_messages_given_key_idx ON outboxd.outbox_messages (destination, idempotency_key) WHERE idempotency_key <> id::text;
		UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'outboxd.outbox_messages_given_key_idx'::regclass`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	if indexValid(t, db, full) || !indexValid(t, db, given) {
		t.Fatal("at version 15 only the index of given keys should exist, valid")
	}
	var held int
	if err := db.QueryRow(`SELECT count(*) FROM outboxd.outbox_messages WHERE idempotency_key <> id::text`).Scan(&held); err != nil || held != 3 {
		t.Fatalf("%d messages with a key other than their id (%v), want 3 (given, derived, keyed)", held, err)
	}
	enqueue("at 15")
	if _, err := m.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	if !indexValid(t, db, full) || indexValid(t, db, given) {
		t.Fatal("down at 14 again: only the full index should exist, valid")
	}
	enqueue("back at 14")
	if _, err := m.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	enqueue("up again")
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if indexValid(t, db, given) || !indexValid(t, db, callerKey) {
		t.Fatal("at version 16 only the index of keys with caller ids should exist, valid")
	}
	enqueue("at 16")
	var marked int
	if err := db.QueryRow(`SELECT count(*) FROM outboxd.outbox_messages WHERE caller_id`).Scan(&marked); err != nil || marked != 1 {
		t.Fatalf("%d messages marked as the caller's id (%v), want 1 (at 16)", marked, err)
	}
	if _, err := m.DownTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	// An Outbox that saw the column at 16: one enqueue fails, saying why
	// (its transaction is aborted), and the next looks again.
	lost := outbox.Message{Destination: "crm", Payload: []byte(`{}`), ID: uuid.Must(uuid.NewV7())}
	if _, err := ob.Enqueue(ctx, pool, lost); err == nil || !strings.Contains(err.Error(), "lost its caller_id column") {
		t.Fatalf("an enqueue after caller_id was dropped: %v", err)
	}
	if e, err := ob.Enqueue(ctx, pool, lost); err != nil || e.Existing {
		t.Fatalf("the enqueue after it: %+v %v", e, err)
	}
	all = append(all, stored{lost, lost.ID})
	enqueue("back at 15")
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	enqueue("16 again")
	if len(all) != 7*5+1 {
		t.Fatalf("%d messages checked, want 36", len(all))
	}
}

// A run of migration 15 cut short after one index was built and the other
// dropped (its version not recorded: the server finished the drop after the
// client went away) runs again without ever dropping the index that is
// left: the keys are never without a unique index. Both ways.
func TestGivenKeyMigrationRerunKeepsTheBuiltIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db, m := upTo(t, 15)
	const full, given = "outboxd.outbox_messages_idempotency_key_idx", "outboxd.outbox_messages_given_key_idx"
	oid := func(name string) (o int64) {
		t.Helper()
		if err := db.QueryRow(`SELECT coalesce(to_regclass($1)::oid::bigint, 0)`, name).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	before := oid(given)
	if _, err := db.Exec(`DELETE FROM outboxd.outboxd_migrations WHERE version_id = 15`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	if after := oid(given); after != before || !indexValid(t, db, given) || oid(full) != 0 {
		t.Fatalf("up again: given-key index %d -> %d (valid %v), full index %d; want it kept and the full one gone",
			before, after, indexValid(t, db, given), oid(full))
	}

	// Down cut short the same way: the full index built, the given one
	// dropped, the version still 15.
	if _, err := db.Exec(`CREATE UNIQUE INDEX outbox_messages_idempotency_key_idx ON outboxd.outbox_messages (destination, idempotency_key);
		DROP INDEX outboxd.outbox_messages_given_key_idx`); err != nil {
		t.Fatal(err)
	}
	before = oid(full)
	if _, err := m.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	if after := oid(full); after != before || !indexValid(t, db, full) || oid(given) != 0 {
		t.Fatalf("down again: full index %d -> %d, given-key index %d; want it kept and the other gone", before, after, oid(given))
	}
}
