package worker

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// The recording statement stores a result only while the message's
// attempts are what its claim read: the same results recorded again, by a
// try after one whose answer was lost, or waiting behind one still running
// on the server (its connection broken, its transaction not yet ended),
// are not stored twice (a review's: a retry's attempt counted twice, a
// second attempt row).
func TestTheRecordingStoresAResultOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	for _, q := range []string{
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key) VALUES ($1::uuid, 'sink', '\x00', $1::uuid::text)`,
		`INSERT INTO outboxd.outbox_lanes (destination, lane, owner, token, lease_until)
		 SELECT 'sink', lane, 'me', 1, now() + interval '1 hour' FROM outboxd.outbox_messages WHERE id = $1`,
	} {
		if _, err := pool.Exec(ctx, q, id); err != nil {
			t.Fatal(err)
		}
	}
	var lane int16
	if err := pool.QueryRow(ctx, `SELECT lane FROM outboxd.outbox_messages WHERE id = $1`, id).Scan(&lane); err != nil {
		t.Fatal(err)
	}
	record := func(q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}) int {
		t.Helper()
		// A retry (status pending, 100 ms to the next attempt), as claimed
		// with 0 attempts.
		rows, err := q.Query(ctx, dbschema.Render(recordSQL, "outboxd"), "sink", lane, "me", int64(1),
			[]uuid.UUID{id}, []string{"pending"}, []string{"retry"}, []int64{100}, []string{"HTTP 500"},
			[]int32{500}, []int64{0}, []float64{1}, []string{""}, []int32{0})
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	// One try still open on the server, the next one waiting behind it.
	first, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(ctx) }()
	if n := record(first); n != 1 {
		t.Fatalf("the first try stored %d results, want 1", n)
	}
	second := make(chan int, 1)
	go func() { second <- record(pool) }()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		// The row's lock: a wait on the first try's transaction.
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'transactionid')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the second try never waited for the first")
		}
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-second; n != 0 {
		t.Fatalf("the try behind the first stored %d results, want 0", n)
	}
	if n := record(pool); n != 0 {
		t.Fatalf("a third try stored %d results, want 0", n)
	}
	var attempts, rows int
	if err := pool.QueryRow(ctx, `SELECT attempts, (SELECT count(*) FROM outboxd.outbox_attempts WHERE message_id = $1)
FROM outboxd.outbox_messages WHERE id = $1`, id).Scan(&attempts, &rows); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || rows != 1 {
		t.Fatalf("%d attempts and %d attempt rows after one attempt recorded three times, want 1 and 1", attempts, rows)
	}
}
