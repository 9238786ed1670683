package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A one-shot command behind a lock another session holds gives up after
// cliLockWait (10 s, docs/operations.md) and says why, where a trial's
// send and outbox dead waited in silence until killed; serve and migrate
// are left to wait (they say what for, or retry).
func TestCommandsGiveUpOnALockAfterCliLockWait(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Given up after the parallel subtests end, which run after this
	// function returns.
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	db := []string{"DATABASE_URL=" + b.url}
	for _, args := range [][]string{{"send", "--destination", "crm"}, {"outbox", "dead"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := outboxdIn(t, db, `{}`, args...)
			took := time.Since(start)
			want := "another session holds a lock this command needs (a long transaction? a migration?) and lock_timeout (10s unless the URL sets it) ran out"
			if r.code != 1 || !strings.Contains(firstLine(r.stderr), want) {
				t.Errorf("exit %d, %q; want 1 and %q", r.code, r.stderr, want)
			}
			if took < cliLockWait || took > cliLockWait+5*time.Second {
				t.Errorf("gave up after %s; want cliLockWait (%s)", took.Round(time.Millisecond), cliLockWait)
			}
		})
	}
}
