package migrations_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pg"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// A migration that PostgreSQL aborts to break a deadlock with a session
// using the tables (a running dispatcher's claim: the CI saw `down --to 5`
// fail so beside one) is run again, not reported failed: its transaction
// rolled back whole. Here session A holds outbox_lanes, migration 6's down
// holds outbox_messages (its DROP INDEX) and waits for outbox_lanes, and
// A then reads outbox_messages. A waits longer than the server's
// deadlock_timeout before it looks, so the migration is the victim.
func TestAMigrationAbortedByADeadlockRunsAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The migrator's sessions look for a deadlock after 3 s of waiting, A's
	// after 10 s: A has 3 s to close the cycle for the migration to be the
	// victim. Should it take longer on a slow machine, A is the victim,
	// and the scenario is played again.
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t)+"&deadlock_timeout=3s")
	var logs bytes.Buffer
	m, err := migrations.New(db, &migrations.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		if _, err := m.DownTo(ctx, 6); err != nil {
			t.Fatal(err)
		}
		if !deadlockDown(t, db, m) {
			break
		}
		if try == 3 {
			t.Fatal("A, not the migration, was the deadlock's victim 3 times")
		}
		t.Logf("try %d: A was the victim (it closed the cycle late); again", try)
		if _, err := m.UpTo(ctx, 6); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := m.Version(ctx); err != nil || v != 5 {
		t.Fatalf("version %d (%v), want 5", v, err)
	}
	if !strings.Contains(logs.String(), "aborted to break a deadlock") {
		t.Fatalf("no deadlock was logged (the test showed nothing):\n%s", logs.String())
	}
}

// deadlockDown runs DownTo(5) against session A, which holds outbox_lanes
// and reads outbox_messages once the down waits for it, and says whether
// A was the deadlock's victim (the down then went through without one).
func deadlockDown(t *testing.T, db *sql.DB, m *migrations.Migrator) (aVictim bool) {
	t.Helper()
	ctx := context.Background()
	a, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below, or failed
	for _, q := range []string{`SET LOCAL deadlock_timeout = '10s'`, `LOCK TABLE outboxd.outbox_lanes IN ROW EXCLUSIVE MODE`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := m.DownTo(ctx, 5); done <- err }()
	// The migration holds outbox_messages and waits for outbox_lanes.
	for deadline := time.Now().Add(20 * time.Second); ; {
		var waiting bool
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = to_regclass('outboxd.outbox_lanes') AND NOT granted)
			AND EXISTS (SELECT 1 FROM pg_locks WHERE relation = to_regclass('outboxd.outbox_messages') AND mode = 'AccessExclusiveLock' AND granted)`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the down ended (%v) before it waited for A's lock", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the down never waited for A's lock on outbox_lanes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The cycle: answered once the server aborts the migration.
	var n int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&n)
	aVictim = pg.SQLState(err) == "40P01"
	if err != nil && !aVictim {
		t.Fatal(err)
	}
	if !aVictim {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	} else if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("down to 5 beside a deadlock: %v", err)
	}
	return aVictim
}
