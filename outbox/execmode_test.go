package outbox_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// execModes are pgx's query modes, as a database URL names them
// (default_query_exec_mode).
var execModes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// modeSetup is a pool on a fresh migrated database in the given mode, and
// an Outbox.
func modeSetup(t *testing.T, mode string) (*pgxpool.Pool, *outbox.Outbox) {
	t.Helper()
	ob, err := outbox.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pgtest.Connect(t, pgtest.URL(t)+"&default_query_exec_mode="+mode), ob
}

// Enqueue runs in the caller's transaction, on whatever query mode the
// caller's pool uses: behind PgBouncer that is often the simple protocol
// or exec mode, where the server does not describe the parameters and pgx
// must know each argument's type itself. Every mode stores the same rows.
func TestEnqueueInEveryQueryExecMode(t *testing.T) {
	ctx := context.Background()
	for _, mode := range execModes {
		t.Run(mode, func(t *testing.T) {
			pool, ob := modeSetup(t, mode)
			given := uuid.Must(uuid.NewV7())
			msgs := []outbox.Message{
				{Destination: "crm", Type: "lead.created", Payload: []byte(`{}`)},
				{Destination: "crm", Type: "lead.created", Payload: []byte(`{}`), OrderingKey: "contact-1"},
				{Destination: "crm", Type: "lead.created", Payload: []byte(`{}`), ID: given},
				{Destination: "crm", Type: "lead.created", Payload: []byte(`{}`), IdempotencyKey: "k-1"},
			}
			// Each twice: the second of those with an id or key of the
			// caller's is the stored message again.
			for round := range 2 {
				for i, m := range msgs {
					e, err := ob.Enqueue(ctx, pool, m)
					if err != nil {
						t.Fatalf("round %d, message %d: %v", round, i, err)
					}
					stored, err := ob.Get(ctx, pool, e.ID)
					if err != nil || stored.ID != e.ID {
						t.Fatalf("round %d, message %d: Get(%s) = %v, %v", round, i, e.ID, stored.ID, err)
					}
					if i == 2 && e.ID != given {
						t.Fatalf("the caller's id %s came back as %s", given, e.ID)
					}
				}
				if _, err := ob.EnqueueBatch(ctx, pool, msgs[2:]); err != nil {
					t.Fatalf("round %d, batch: %v", round, err)
				}
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 6 { // two of each unkeyed/keyed fresh message, one per id or key given
				t.Fatalf("%d messages stored, want 6", n)
			}
		})
	}
}

// The operator calls take ids too (outboxd's CLI passes the operator's
// database URL, query mode and all): each works in every mode.
func TestOperatorCallsInEveryQueryExecMode(t *testing.T) {
	ctx := context.Background()
	for _, mode := range execModes {
		t.Run(mode, func(t *testing.T) {
			pool, ob := modeSetup(t, mode)
			var ids []uuid.UUID
			for range 3 {
				e, err := ob.Enqueue(ctx, pool, outbox.Message{Destination: "crm", Type: "lead.created", Payload: []byte(`{}`)})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.ID)
			}
			if _, err := pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead'`); err != nil {
				t.Fatal(err)
			}
			if _, err := ob.Get(ctx, pool, ids[0]); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if _, err := ob.Attempts(ctx, pool, ids[0]); err != nil {
				t.Fatalf("Attempts: %v", err)
			}
			if dead, err := ob.ListDead(ctx, pool, outbox.Filter{IDs: ids}, 10); err != nil || len(dead) != 3 {
				t.Fatalf("ListDead(ids) = %d, %v; want 3", len(dead), err)
			}
			if n, err := ob.CountDead(ctx, pool, outbox.Filter{IDs: ids[:2]}); err != nil || n != 2 {
				t.Fatalf("CountDead(2 ids) = %d, %v", n, err)
			}
			if got, err := ob.RequeueIDs(ctx, pool, outbox.Filter{IDs: ids[:1]}); err != nil || len(got) != 1 || got[0] != ids[0] {
				t.Fatalf("RequeueIDs = %v, %v; want [%s]", got, err, ids[0])
			}
			if got, err := ob.PurgeDeadIDs(ctx, pool, outbox.Filter{IDs: ids[1:]}); err != nil || len(got) != 2 {
				t.Fatalf("PurgeDeadIDs = %v, %v; want 2", got, err)
			}
		})
	}
}
