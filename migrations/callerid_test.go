package migrations_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
)

// Migration 16 adds a column, which takes the table's strongest lock for
// an instant. While a transaction stays open on the table, a plain ALTER
// TABLE would wait for it and every enqueue would queue behind the ALTER;
// the migration waits for the lock 200 ms at a time instead, so enqueues
// go on (each waits at most that long), and it finishes once the
// transaction ends.
func TestCallerIDMigrationDoesNotStopEnqueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, _, m := upTo(t, 15)
	pool := pgtest.Connect(t, url)
	ob, err := outbox.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := outbox.Message{Destination: "crm", Payload: []byte(`{}`)}
	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = long.Rollback(ctx) })
	if _, err := ob.Enqueue(ctx, long, msg); err != nil {
		t.Fatal(err)
	}

	up := make(chan error, 1)
	go func() {
		_, err := m.Up(ctx)
		up <- err
	}()
	// The ALTER has waited for the lock at least once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waits bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE query LIKE 'ALTER TABLE outboxd.outbox_messages ADD COLUMN%' AND wait_event_type = 'Lock')`).Scan(&waits); err != nil {
			t.Fatal(err)
		}
		if waits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never waited for the table's lock")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Enqueues go on meanwhile. (The bound only ends a failing test: with a
	// plain ALTER each would wait for the open transaction.)
	for i := range 20 {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		m := msg
		m.ID = uuid.Must(uuid.NewV7())
		_, err := ob.Enqueue(c, pool, m)
		cancel()
		if err != nil {
			t.Fatalf("enqueue %d while the migration waits: %v", i, err)
		}
	}
	select {
	case err := <-up:
		t.Fatalf("the migration ended while the transaction was open: %v", err)
	default:
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-up; err != nil {
		t.Fatal(err)
	}
	if v, err := m.Version(ctx); err != nil || v != 16 {
		t.Fatalf("version %d, %v; want 16", v, err)
	}
}

// A caller's id is marked only while migration 16's index is valid, as
// each statement finds it, not as soon as the column exists, nor because
// the index was valid when the producer last looked: while the index
// builds it checks no marked message against another (migration 15's index
// does not hold them), so two marked ones stored with one key, by
// transactions that overlap, would fail the build, and every run of it
// after (an operator's trial, with marking at the column; a review, with a
// producer that had seen the index valid before a down and an up again).
func TestCallerIDsAreMarkedOnceTheIndexIsValid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, db, m := upTo(t, 16)
	pool := pgtest.Connect(t, url)
	long, err := outbox.New(nil) // lives through every step
	if err != nil {
		t.Fatal(err)
	}
	marked := func(ob *outbox.Outbox, stage string) bool {
		t.Helper()
		e, err := ob.Enqueue(ctx, pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`), ID: uuid.Must(uuid.NewV7())})
		if err != nil {
			t.Fatal(stage, err)
		}
		var mark bool
		if err := db.QueryRow(`SELECT caller_id FROM outboxd.outbox_messages WHERE id = $1`, e.ID).Scan(&mark); err != nil {
			t.Fatal(stage, err)
		}
		return mark
	}
	newOutbox := func() *outbox.Outbox {
		t.Helper()
		ob, err := outbox.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		return ob
	}
	if !marked(long, "at 16") {
		t.Fatal("a caller's id was not marked at version 16")
	}
	if _, err := m.DownTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	// migrate up again, its index still building: the column is there and
	// the index is not valid.
	if _, err := db.Exec(`ALTER TABLE outboxd.outbox_messages ADD COLUMN caller_id boolean NOT NULL DEFAULT false;
		CREATE UNIQUE INDEX outbox_messages_caller_key_idx ON outboxd.outbox_messages (destination, idempotency_key)
			WHERE idempotency_key <> id::text OR caller_id;
		UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'outboxd.outbox_messages_caller_key_idx'::regclass`); err != nil {
		t.Fatal(err)
	}
	if marked(long, "rebuilding, seen valid before") || marked(newOutbox(), "rebuilding, a new producer") {
		t.Fatal("a caller's id was marked while the index was not valid")
	}
	if _, err := m.Up(ctx); err != nil { // rebuilds the invalid index
		t.Fatal(err)
	}
	if !marked(long, "valid again") || !marked(newOutbox(), "valid, a new producer") {
		t.Fatal("a caller's id was not marked at version 16")
	}
}

// A down of 16 that never gets its moment for the column's drop (here
// interrupted while it waits) leaves version 16 whole: the caller-key index
// is dropped with the column, in one instant, never before it (it was: the
// gap of 15 back at version 16, and up with nothing to do). Run again once
// the table is free, it finishes.
func TestCallerIDDownCutShortKeepsTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, db, m := upTo(t, 16)
	pool := pgtest.Connect(t, url)
	holder, err := pool.Begin(ctx) // READ COMMITTED: a lock, no snapshot kept
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Rollback(ctx) })
	if _, err := holder.Exec(ctx, `SELECT count(*) FROM outboxd.outbox_messages`); err != nil {
		t.Fatal(err)
	}
	downCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	down := make(chan error, 1)
	go func() {
		_, err := m.DownTo(downCtx, 15)
		down <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waits bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE query LIKE 'ALTER TABLE outboxd.outbox_messages DROP COLUMN%' AND wait_event_type = 'Lock')`).Scan(&waits); err != nil {
			t.Fatal(err)
		}
		if waits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the down never waited to drop the column")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-down; err == nil {
		t.Fatal("the down cut short reported no error")
	}
	state := func() string {
		t.Helper()
		var s string
		if err := db.QueryRow(`SELECT (SELECT max(version_id) FROM outboxd.outboxd_migrations WHERE is_applied) || ' ' ||
			coalesce((SELECT string_agg(indexrelid::regclass::text || '=' || indisvalid, ' ' ORDER BY indexrelid::regclass::text) FROM pg_index
			          WHERE indexrelid::regclass::text IN ('outboxd.outbox_messages_caller_key_idx', 'outboxd.outbox_messages_given_key_idx')), '') || ' ' ||
			EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'outboxd' AND table_name = 'outbox_messages' AND column_name = 'caller_id')`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s, want := state(), "16 outboxd.outbox_messages_caller_key_idx=true outboxd.outbox_messages_given_key_idx=true true"; s != want {
		t.Fatalf("after the down cut short: %s, want %s", s, want)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	if s, want := state(), "15 outboxd.outbox_messages_given_key_idx=true false"; s != want {
		t.Fatalf("after the second down: %s, want %s", s, want)
	}
}

// The ALTER's notice names the sessions holding the table in this
// database only: test databases cloned from one template share the
// table's OID, and a trial's notice named another database's sessions.
func TestAlterNoticeNamesThisDatabasesSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hold := func(url string) int {
		t.Helper()
		tx, err := pgtest.Connect(t, url).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT count(*) FROM outboxd.outbox_messages) m`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// Two clones of the migrated template: one OID for both tables. The
	// down's column drop takes the ALTER's way.
	url, other := pgtest.URL(t), pgtest.URL(t)
	db := pgtest.SQLDB(t, url)
	// 15's index already built (as by a down cut short after it): the
	// down goes straight to the column (a build would wait for the
	// holder's transaction first).
	if _, err := db.Exec(`CREATE UNIQUE INDEX outbox_messages_given_key_idx ON outboxd.outbox_messages (destination, idempotency_key)
		WHERE idempotency_key <> id::text`); err != nil {
		t.Fatal(err)
	}
	here, there := hold(url), hold(other)
	var logs syncbuf.Buffer
	m, err := migrations.New(db, &migrations.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	up := make(chan error, 1)
	go func() {
		_, err := m.DownTo(upCtx, 15)
		up <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "waiting for a moment without a transaction on the table") {
		if time.Now().After(deadline) {
			t.Fatalf("no notice; logs:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-up
	got := logs.String()
	if !strings.Contains(got, fmt.Sprintf(`sessions="pid %d (idle in transaction, transaction open `, here)) ||
		strings.Contains(got, fmt.Sprintf("pid %d ", there)) {
		t.Fatalf("the notice should name pid %d (this database) and not %d (another):\n%s", here, there, got)
	}
}

// A run waiting for another's migration lock says so, naming the holder's
// pid (a trial's second migrate up waited 11 s without a word).
func TestAWaitForTheMigrationLockIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, _, _ := upTo(t, 15) // 16 pending: goose takes its lock only then
	conn, err := pgtest.Connect(t, url).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var pid int
	id := int64(crc32.ChecksumIEEE([]byte("outboxd migrations outboxd"))) // migrations.lockID
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) l`, id).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	m, err := migrations.New(pgtest.SQLDB(t, url), &migrations.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	up := make(chan error, 1)
	go func() {
		_, err := m.Up(ctx)
		up <- err
	}()
	want := fmt.Sprintf(`msg="waiting for another migration run of this schema to end" schema=outboxd backend_pid=%d`, pid)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no notice naming pid %d; logs:\n%s", pid, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, id); err != nil {
		t.Fatal(err)
	}
	if err := <-up; err != nil {
		t.Fatal(err)
	}
}
