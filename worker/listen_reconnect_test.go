package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// The listening connection dropped again and again (a pooler, a flaky
// network, an operator's pg_terminate_backend), each time after it had
// listened steadily (5 s in production, 500 ms here), reconnects within
// its first backoff (100 ms) every time: an operator's trial found the
// wait growing to 5 s from the seventh drop on, never reset. Dropped as
// soon as it listens, its waits grow again (200, 400, 800, 1600 ms), so
// that its reconnects, each waking every lane, stay few.
func TestAListenerDroppedAgainAndAgainReconnectsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	d := b.startWith(t, b.config(t, func(c *worker.Config) { c.SweepInterval = time.Hour }), func(d *worker.Dispatcher) {
		worker.SetListenSteady(d, 500*time.Millisecond)
	})
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	// The listening session's last statement takes the dispatcher id's
	// advisory lock (or, if its killed predecessor still held it, names
	// the holder); asked on a connection that never sent that text.
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	killed := 0
	drop := func() time.Duration {
		t.Helper()
		var pid int
		waitFor(t, 10*time.Second, "the listening session", func() bool {
			return conn.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1
				  AND query LIKE '%hashtextextended(''outboxd dispatcher ''%'`, killed).Scan(&pid) == nil
		})
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		killed = pid
		waitFor(t, 10*time.Second, "the drop noticed", func() bool { return !d.Ready() })
		return waitFor(t, 10*time.Second, "ready again", d.Ready)
	}
	var slowest time.Duration
	for i := range 8 {
		time.Sleep(600 * time.Millisecond) // a session that listened steadily
		took := drop()
		t.Logf("drop %d: ready again after %s", i+1, took)
		slowest = max(slowest, took)
	}
	if slowest > time.Second {
		t.Fatalf("a reconnect took %s after a session that had listened 600 ms; want its first backoff, 100 ms (and the connection's time)", slowest)
	}
	var took time.Duration
	for range 4 {
		took = drop()
	}
	t.Logf("the fourth reconnect of a flapping session took %s", took)
	if took < time.Second {
		t.Fatalf("the fourth reconnect of a flapping session took %s; want its backoff grown to 1.6 s", took)
	}
}
