package migrations_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/migrations"
)

// An up that waited for its lock behind a down to 0 finds the schema and
// its version table gone: it starts again from nothing and applies every
// migration. It failed, telling the operator to run `migrate up` (an
// operator's trial: `migrate down --to 0 & migrate up`, 8 runs in 16).
// The down is played here by a session that holds the runs' lock and drops
// the schema, as the down's cleanup does; the up is seen waiting in
// its log before the lock is let go.
func TestUpBehindADownToZeroAppliesEverything(t *testing.T) {
	t.Parallel()
	_, db, m := upTo(t, 3)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrations.LockID("outboxd")); err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	up, err := migrations.New(db, &migrations.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := up.Up(ctx); done <- err }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(log.String(), "waiting for another migration run"); {
		if time.Now().After(deadline) {
			t.Fatalf("the up never waited for the lock:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := conn.ExecContext(ctx, `DROP SCHEMA outboxd CASCADE`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, migrations.LockID("outboxd")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("up behind the down: %v", err)
	}
	if v, err := m.Version(ctx); err != nil || v != 16 {
		t.Fatalf("version %d (%v), want 16", v, err)
	}
}

// An up started while a down of the schema runs waits for it, then
// applies what the down removed. goose looks for pending migrations before
// it takes its lock: the up saw the versions the down was removing, said
// "up to date" (exit 0), and the down left the schema empty (an operator's
// trial, 9 runs in 10). The down is played by a session that holds the
// runs' lock, the schema still at 16, and drops it only once the up is
// seen waiting in its log.
func TestUpDuringADownWaitsForIt(t *testing.T) {
	t.Parallel()
	_, db, _ := upTo(t, 16)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrations.LockID("outboxd")); err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	up, err := migrations.New(db, &migrations.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := up.Up(ctx); done <- err }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(log.String(), "waiting for another migration run"); {
		select {
		case err := <-done:
			t.Fatalf("the up ended (%v) while a down held the lock, without waiting for it", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the up never waited for the lock:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := conn.ExecContext(ctx, `DROP SCHEMA outboxd CASCADE`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, migrations.LockID("outboxd")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("up during the down: %v", err)
	}
	if v, err := up.Version(ctx); err != nil || v != 16 {
		t.Fatalf("version %d (%v), want 16", v, err)
	}
}
