package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
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
	const bound = pool + serveConnections
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
	if strings.Contains(d.stderr.String(), "serve may hold more connections") {
		t.Fatalf("a warning of a connection limit, with none below serve's need:\n%s", d.stderr.String())
	}
}

// A role whose CONNECTION LIMIT is below what serve may hold is said so
// at the start: its claims and recordings fail to connect at times, and
// /readyz answers 503, with nothing else saying why (an operator's trial).
func TestServeWarnsOfAConnectionLimitBelowItsNeed(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	role := fmt.Sprintf("outboxd_limited_%d", time.Now().UnixNano())
	var db string
	if err := b.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER CONNECTION LIMIT 5;
GRANT ALL ON SCHEMA outboxd TO %[1]s; GRANT ALL ON ALL TABLES IN SCHEMA outboxd TO %[1]s;
GRANT ALL ON ALL SEQUENCES IN SCHEMA outboxd TO %[1]s; GRANT ALL ON ALL FUNCTIONS IN SCHEMA outboxd TO %[1]s`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = b.pool.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %[1]s; DROP ROLE %[1]s`, role))
	})
	u, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	d := startDaemon(t, serveConfig(t, u.String(), b.sink.URL()))
	waitUntil(t, 20*time.Second, "the warning", func() bool {
		return strings.Contains(d.stderr.String(), "serve may hold more connections than the role's CONNECTION LIMIT allows")
	})
	if log := d.stderr.String(); !strings.Contains(log, `"limit":5`) || !strings.Contains(log, `"serve_may_hold":9`) {
		t.Fatalf("the warning does not give the numbers:\n%s", log)
	}
	if strings.Contains(d.stderr.String(), "database's CONNECTION LIMIT") {
		t.Fatal("a database without a limit was said to have one")
	}
}
