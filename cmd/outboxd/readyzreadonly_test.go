package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A dispatcher whose server stopped taking writes (the primary it was on
// became a standby; here, default_transaction_read_only for its new
// sessions) is not ready, and /readyz says why: it said only "its leases
// not renewed within lease_ttl, or ..." (an operator's failover trial),
// where the log had the error. It is ready, and delivers, once writable.
func TestReadyzNamesTheFailureOfAServerTurnedReadOnly(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	d.waitReady(t)
	var db string
	if err := b.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	readOnly := func(on bool) {
		t.Helper()
		set := "RESET default_transaction_read_only"
		if on {
			set = "SET default_transaction_read_only = on"
		}
		if _, err := b.pool.Exec(ctx, "BEGIN READ WRITE; ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" "+set+"; COMMIT"); err != nil {
			t.Fatal(err)
		}
		// Sessions keep the setting they started with: serve's new ones
		// get the database's.
		if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'outboxd serve'`); err != nil {
			t.Fatal(err)
		}
		b.pool.Reset()
	}
	readOnly(true)
	var body string
	waitUntil(t, 30*time.Second, "/readyz 503 naming the read-only transaction", func() bool {
		var code int
		code, body = d.get("/readyz")
		return code == 503 && strings.Contains(body, "read-only transaction")
	})
	if !strings.Contains(body, "SQLSTATE 25006") || !strings.Contains(body, "database operations failing for") {
		t.Fatalf("/readyz: %s", body)
	}
	t.Logf("/readyz: %s", body)
	readOnly(false)
	d.waitReady(t)
	b.enqueue(t, 10, 2)
	waitUntil(t, 30*time.Second, "10 messages delivered", func() bool { return len(b.sink.Accepted()) == 10 })
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
