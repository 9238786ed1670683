package migrations_test

import (
	"context"
	"database/sql"
	"testing"
)

// indexValid reports whether the index exists and is valid (a CONCURRENTLY
// build that failed leaves an invalid one).
func indexValid(t *testing.T, db *sql.DB, qualified string) bool {
	t.Helper()
	var ok bool
	err := db.QueryRow(`SELECT coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)`, qualified).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// Migration 12 drops outbox_messages_pending_created_idx from a table that
// holds messages (and keeps outbox_messages_caused_by_idx, which the
// console reads) and, going down, rebuilds it over the rows (CONCURRENTLY, so outside a
// transaction), also over an invalid index a failed build left.
func TestPendingCreatedIndexGoesAndComesBackWithRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, m := upFresh(t)
	if _, err := m.DownTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	const idx, caused = "outboxd.outbox_messages_pending_created_idx", "outboxd.outbox_messages_caused_by_idx"
	if !indexValid(t, db, idx) || !indexValid(t, db, caused) {
		t.Fatal("at version 10 both indexes should exist")
	}
	for _, q := range []string{
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key)
		 SELECT gen_random_uuid(), 'crm', 'k' || (i % 50), i / 50 + 1, '\x00', 'k-' || i FROM generate_series(0, 4999) i`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, status, delivered_at, caused_by_source, caused_by_event_id)
		 SELECT gen_random_uuid(), 'crm', '\x00', 'd-' || i, 'delivered', now(), 'stripe', 'evt_' || i FROM generate_series(0, 4999) i`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (pending, all int) {
		t.Helper()
		if err := db.QueryRow(`SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM outboxd.outbox_messages`).Scan(&pending, &all); err != nil {
			t.Fatal(err)
		}
		return pending, all
	}

	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Version(ctx); err != nil || v != 16 {
		t.Fatalf("version %d, %v; want 16", v, err)
	}
	var left bool
	if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, idx).Scan(&left); err != nil || left {
		t.Fatalf("after up the index is still there (%v, %v)", left, err)
	}
	if !indexValid(t, db, caused) {
		t.Fatal("after up the cause index is gone: the console's event page reads it")
	}
	if p, a := count(); p != 5000 || a != 10000 {
		t.Fatalf("after up: %d pending of %d, want 5000 of 10000", p, a)
	}

	// An invalid leftover of a failed build: the down step replaces it.
	if _, err := db.Exec(`CREATE INDEX outbox_messages_pending_created_idx ON outboxd.outbox_messages (created_at) WHERE status = 'pending';
		UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'outboxd.outbox_messages_pending_created_idx'::regclass`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	if !indexValid(t, db, idx) || !indexValid(t, db, caused) {
		t.Fatal("after down an index is missing or invalid")
	}
	if p, a := count(); p != 5000 || a != 10000 {
		t.Fatalf("after down: %d pending of %d, want 5000 of 10000", p, a)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
