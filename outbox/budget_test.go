package outbox_test

import (
	"context"
	"sort"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// indexesHolding names the indexes of outbox_messages that have an entry
// for the message id: every index without a predicate, and those whose
// predicate the row meets. Each is one index entry written by its insert.
func (b bundle) indexesHolding(t *testing.T, id uuid.UUID) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := b.pool.Query(ctx, `
SELECT c.relname, coalesce(pg_get_expr(i.indpred, i.indrelid), 'true')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'outboxd.outbox_messages'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	preds := map[string]string{}
	for rows.Next() {
		var name, pred string
		if err := rows.Scan(&name, &pred); err != nil {
			t.Fatal(err)
		}
		preds[name] = pred
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	var out []string
	for name, pred := range preds {
		var meets bool
		// The predicate is PostgreSQL's own text of the catalog's index
		// definition, not input.
		if err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outboxd.outbox_messages WHERE id = $1 AND (`+pred+`))`, id).Scan(&meets); err != nil {
			t.Fatal(err)
		}
		if meets {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// The enqueue budget of issue 9 (docs/benchmarks.md, bench-levers): an
// unkeyed message writes at most 3 index entries (primary key, idempotency
// key, the unkeyed lane index); one caused by an inbox event 4 (the cause
// index, which the console's event page reads); a keyed one 4 (the
// ordering index and the keyed lane index instead of the unkeyed one).
func TestEnqueueIndexEntriesWithinBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	unkeyed, err := b.outbox.Enqueue(ctx, b.pool, msg("email"))
	if err != nil {
		t.Fatal(err)
	}
	causedMsg := msg("email")
	causedMsg.CausedBy = &outbox.EventRef{Source: "stripe", EventID: "evt_1"}
	caused, err := b.outbox.Enqueue(ctx, b.pool, causedMsg)
	if err != nil {
		t.Fatal(err)
	}
	// One more than without a cause: the cause index, through which the
	// console finds the messages an event caused.
	if got := b.indexesHolding(t, caused.ID); len(got) > 4 {
		t.Errorf("an enqueue caused by an inbox event writes %d index entries, want at most 4: %v", len(got), got)
	}
	keyedMsg := msg("email")
	keyedMsg.OrderingKey = "contact-1"
	keyed, err := b.outbox.Enqueue(ctx, b.pool, keyedMsg)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.indexesHolding(t, unkeyed.ID); len(got) > 3 {
		t.Errorf("an unkeyed enqueue writes %d index entries, want at most 3: %v", len(got), got)
	}
	if got := b.indexesHolding(t, keyed.ID); len(got) > 4 {
		t.Errorf("a keyed enqueue writes %d index entries, want at most 4: %v", len(got), got)
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
