package migrations_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/migrations"
)

// Migrations 8 and 11 build their indexes CONCURRENTLY: behind a
// transaction left open, each says which session it waits for (a trial's
// migrate up waited 25 s without a word, the SQL files' way), and
// finishes once it ends, with the index valid.
func TestIndexBuildsOfMigrations8And11SayWhatTheyWaitFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version int64
		index   string
	}{{8, "inbox_events_received_idx"}, {11, "outbox_attempts_attempted_at_idx"}} {
		t.Run(fmt.Sprint("migration ", tc.version), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url, db, _ := upTo(t, tc.version-1)
			holder, err := pgtest.Connect(t, url).Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = holder.Rollback(ctx) })
			var pid int
			if err := holder.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT pg_current_xact_id()) x`).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			var logs syncbuf.Buffer
			m, err := migrations.New(db, &migrations.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			up := make(chan error, 1)
			go func() {
				_, err := m.UpTo(ctx, tc.version)
				up <- err
			}()
			want := fmt.Sprintf(`sessions="pid %d (`, pid)
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(logs.String(), want) {
				if time.Now().After(deadline) {
					t.Fatalf("no line names the session waited for (%s):\n%s", want, logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), "waiting for other sessions' transactions to end") || !strings.Contains(logs.String(), "build index "+tc.index) {
				t.Fatalf("the wait is not said of the build of %s:\n%s", tc.index, logs.String())
			}
			if err := holder.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-up; err != nil {
				t.Fatal(err)
			}
			var valid bool
			if err := db.QueryRow(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('outboxd.' || $1)`, tc.index).Scan(&valid); err != nil || !valid {
				t.Fatalf("%s after the migration: valid %v, %v", tc.index, valid, err)
			}
		})
	}
}
