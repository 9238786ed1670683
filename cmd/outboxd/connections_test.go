package main

import (
	"context"
	"testing"
	"time"
)

// serve holds at most what docs/configuration.md says: its pool
// (pool_max_conns), one connection to LISTEN, River's listener (taken from
// the pool for good), lane management's pool of 2 and /metrics' one.
// Counted while it delivers, with a scrape.
func TestServeHoldsTheConnectionsTheDocsCount(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	const pool = 2
	d := startDaemon(t, serveConfig(t, b.url+"&application_name=outboxd-counted&pool_max_conns=2", b.sink.URL()))
	d.waitReady(t)
	if code, _ := d.get("/metrics"); code != 200 {
		t.Fatalf("/metrics answered %d", code)
	}
	const bound = pool + 1 + 1 + 2 + 1
	most := 0
	b.enqueue(t, 400, 40)
	waitUntil(t, 30*time.Second, "400 messages delivered", func() bool {
		var n int
		if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'outboxd-counted'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
		return countStatus(t, b.pool, "sink", "delivered") == 400
	})
	if most > bound {
		t.Fatalf("serve held %d connections, the docs count at most %d", most, bound)
	}
	if most < pool+1 {
		t.Fatalf("serve held %d connections: fewer than its pool, the listener and the leases' (the count looked at nothing?)", most)
	}
	t.Logf("at most %d connections (bound %d)", most, bound)
}
