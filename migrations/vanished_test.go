package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/migrations"
)

// An up that meets a down to 0 of another run ends with every migration
// applied, in both orders the trials found:
//   - it waited for goose's lock behind the down, and then found the schema
//     and its version table gone: it failed, telling the operator to run
//     `migrate up` (an operator's trial, 8 runs in 16);
//   - it started while the down ran: goose looks for pending migrations
//     before it takes its lock, saw the versions the down was removing,
//     and said "up to date" at once; the down then left the schema empty
//     (a re-trial, 9 runs in 10).
//
// The down is played by a session that holds the runs' lock, the schema
// at 3 (nothing for goose to skip) or at 16 (nothing to apply), and drops
// the schema, as the down's cleanup does, once the up says it waits.
func TestUpMeetingADownToZeroAppliesEverything(t *testing.T) {
	t.Parallel()
	for _, from := range []int64{3, 16} {
		t.Run(fmt.Sprintf("from %d", from), func(t *testing.T) {
			t.Parallel()
			_, db, _ := upTo(t, from)
			ctx := context.Background()
			conn, up, done := upBehindTheLock(t, db)
			// The down's index builds wait for every open transaction:
			// the up's wait for the lock must not be one (it was: both
			// waited for 5 minutes, a re-trial's). One here, on a table of
			// the schema, while the lock is held.
			bctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if _, err := db.ExecContext(bctx, `CREATE INDEX CONCURRENTLY test_build ON outboxd.outbox_keys (last_seq)`); err != nil {
				t.Fatalf("an index build while the up waits for the lock: %v (it waited for the up's transaction)", err)
			}
			if _, err := conn.ExecContext(ctx, `DROP SCHEMA outboxd CASCADE`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, migrations.LockID("outboxd")); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("up meeting the down: %v", err)
			}
			if v, err := up.Version(ctx); err != nil || v != 16 {
				t.Fatalf("version %d (%v), want 16", v, err)
			}
		})
	}
}

// upBehindTheLock takes the runs' lock of schema outboxd on a connection
// of its own (returned, to let it go), starts an up and returns once the
// up says it waits for the lock, with the up's end to come on done.
func upBehindTheLock(t *testing.T, db *sql.DB) (*sql.Conn, *migrations.Migrator, chan error) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
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
			t.Fatalf("the up ended (%v) while another run held the lock, without waiting for it", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the up never waited for the lock:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return conn, up, done
}
