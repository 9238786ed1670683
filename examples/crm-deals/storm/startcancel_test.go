package storm

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// A signal (ctx cancelled) while the dispatcher's start waits on a lock
// (its lanes' rows here) ends Start at once, as in outboxd serve: the
// startup is not beyond the signal.
func TestStartEndsAtCancelWhileBlocked(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=12")
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_lanes IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		e, err := Start(sctx, pool, io.Discard)
		if err == nil {
			e.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.relation = 'outboxd.outbox_lanes'::regclass AND a.query LIKE '%INSERT INTO%outbox_lanes%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher's start never waited on the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Start after the cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start still blocked 5 s after its context was cancelled")
	}
}
