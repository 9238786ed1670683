package outbox_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// The enqueue budget of issue 9 (docs/benchmarks.md, bench-levers): a
// message writes at most 3 index entries unless an inbox event caused it.
// Since migration 15 one keyed by an id Enqueue made (as it keys a message
// without an id, key or cause) has no entry in the index of keys: an
// unkeyed one writes 2 (primary key, unkeyed lane index), a keyed one 3
// (the ordering index and the keyed lane index instead); one with the
// caller's id has an entry there (migration 16: 3); one caused by an inbox
// event adds that index (its derived key) and the cause index, which the
// console's event page reads.
func TestEnqueueIndexEntriesWithinBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cause := &outbox.EventRef{Source: "stripe", EventID: "evt_1"}
	for _, c := range []struct {
		what     string
		ordering string
		cause    *outbox.EventRef
		id       uuid.UUID
		want     string
	}{
		{"unkeyed", "", nil, uuid.Nil, "outbox_messages_lane_unkeyed_idx outbox_messages_pkey"},
		{"keyed", "contact-1", nil, uuid.Nil, "outbox_messages_lane_keyed_idx outbox_messages_ordering_idx outbox_messages_pkey"},
		{"unkeyed, the caller's id", "", nil, uuid.Must(uuid.NewV7()),
			"outbox_messages_caller_key_idx outbox_messages_lane_unkeyed_idx outbox_messages_pkey"},
		{"unkeyed, caused by an inbox event", "", cause, uuid.Nil,
			"outbox_messages_caller_key_idx outbox_messages_caused_by_idx outbox_messages_lane_unkeyed_idx outbox_messages_pkey"},
	} {
		m := msg("email")
		m.OrderingKey, m.CausedBy, m.ID = c.ordering, c.cause, c.id
		e, err := b.outbox.Enqueue(ctx, b.pool, m)
		if err != nil {
			t.Fatal(err)
		}
		if got := pgtest.MessageIndexes(t, b.pool, e.ID); got != c.want {
			t.Errorf("%s: an enqueue writes entries to %s, want %s", c.what, got, c.want)
		}
	}
}

// The enqueue's WAL budget of issue 9 (docs/benchmarks.md): at most 600 B
// per unkeyed message committed alone, as Enqueue stores one without a
// cause. Measured on a server of the test's own, so that no other work
// lands in the WAL, with full-page writes off (images of pages first
// touched after a checkpoint depend on the checkpoint interval, not on what
// an enqueue writes) and autovacuum kept off the table.
func TestEnqueueWALWithinBudget(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	pool := pgtest.Connect(t, cluster.URL(t))
	ob, err := outbox.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE outboxd.outbox_messages SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	enqueue := func(n int) {
		t.Helper()
		for range n {
			if _, err := ob.Enqueue(ctx, pool, msg("email-api")); err != nil {
				t.Fatal(err)
			}
		}
	}
	lsn := func() (l int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'`).Scan(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	enqueue(1000) // the tables' and indexes' first pages
	const n = 3000
	start := lsn()
	enqueue(n)
	per := (lsn() - start) / n
	if per > 600 {
		t.Fatalf("an enqueue writes %d B of WAL, want at most 600", per)
	}
	t.Logf("%d B of WAL per enqueue", per)
}
