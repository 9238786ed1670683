package migrations_test

import (
	"context"
	"testing"
)

// Migration 14 run again after a run that built its index but was cut
// short before goose recorded the version keeps the index it built (the
// SQL form dropped it and built it again: on a large table, the whole
// build a second time). Migration 12's down, likewise, keeps the index it
// rebuilt.
func TestIndexMigrationsKeepAValidIndexOnARerun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db, m := upTo(t, 14)
	oid := func(index string) (o int64) {
		t.Helper()
		if err := db.QueryRow(`SELECT coalesce(to_regclass($1)::oid::bigint, 0)`, index).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	forget := func(version int) {
		t.Helper()
		if _, err := db.Exec(`DELETE FROM outboxd.outboxd_migrations WHERE version_id = $1`, version); err != nil {
			t.Fatal(err)
		}
	}
	const retry, pendingCreated = "outboxd.outbox_messages_retry_heads_idx", "outboxd.outbox_messages_pending_created_idx"
	before := oid(retry)
	forget(14)
	if _, err := m.UpTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	if after := oid(retry); before == 0 || after != before {
		t.Fatalf("retry heads index %d before the rerun, %d after: rebuilt", before, after)
	}

	if _, err := m.DownTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	before = oid(pendingCreated)
	// The down of 12 built it; goose's record of the down was lost.
	if _, err := db.Exec(`INSERT INTO outboxd.outboxd_migrations (version_id, is_applied) VALUES (12, true)`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	if after := oid(pendingCreated); before == 0 || after != before || !indexValid(t, db, pendingCreated) {
		t.Fatalf("pending-created index %d before the rerun of 12's down, %d after", before, after)
	}
}
