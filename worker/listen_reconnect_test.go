package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// The listening connection dropped again and again (a pooler, a flaky
// network, an operator's pg_terminate_backend), each time after it had
// listened for a while, reconnects within its first backoff (100 ms)
// every time: an operator's trial found the wait growing to 5 s from the
// sixth drop on, never reset. Each drop here comes 400 ms into a session;
// then, dropped as soon as it listens, its waits grow again.
func TestAListenerDroppedAgainAndAgainReconnectsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	d := b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval = time.Hour }))
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	// The listening session holds the dispatcher id's advisory lock.
	const listener = `SELECT l.pid FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND (l.classid::bigint << 32 | l.objid::bigint) = hashtextextended('outboxd dispatcher outboxd ' || $1, 0)`
	var slowest time.Duration
	for i := range 8 {
		var pid int
		waitFor(t, 10*time.Second, "the listening session", func() bool {
			return b.pool.QueryRow(ctx, listener, d.ID()).Scan(&pid) == nil
		})
		time.Sleep(400 * time.Millisecond) // a session that lived: no flapping
		if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the drop noticed", func() bool { return !d.Ready() })
		took := waitFor(t, 10*time.Second, "ready again", d.Ready)
		t.Logf("drop %d: ready again after %s", i+1, took)
		slowest = max(slowest, took)
	}
	if slowest > time.Second {
		t.Fatalf("a reconnect took %s after a session that had listened 400 ms; want its first backoff, 100 ms (and the connection's time)", slowest)
	}

	// A session dropped as soon as it listens is flapping: the waits grow
	// (100, 200, 400, 800 ms), as they did before.
	var took time.Duration
	for range 4 {
		var pid int
		waitFor(t, 10*time.Second, "the listening session", func() bool {
			return b.pool.QueryRow(ctx, listener, d.ID()).Scan(&pid) == nil
		})
		if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the drop noticed", func() bool { return !d.Ready() })
		took = waitFor(t, 10*time.Second, "ready again", d.Ready)
	}
	if took < 600*time.Millisecond {
		t.Fatalf("the fourth reconnect of a flapping session took %s; want its backoff grown to 800 ms", took)
	}
	t.Logf("the fourth reconnect of a flapping session took %s", took)
}
