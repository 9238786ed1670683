package main

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A pooled connection that PostgreSQL closed (pg_terminate_backend,
// idle_session_timeout, a restart) made the next /readyz answer 503
// "database unreachable", the database up: the ping that found it dead
// was not tried again on a fresh connection.
func TestReadyzAfterItsConnectionWasClosed(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := serveConfig(t, b.url, b.sink.URL())
	// Idle runners: their sweeps would find the closed connections first.
	body := strings.Replace(readFile(t, config), "sweep_interval: 100ms", "sweep_interval: 30s", 1)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, config)
	d.waitReady(t)
	ctx := context.Background()
	for range 3 {
		// Every idle session of serve's but the two that LISTEN (its
		// dispatcher's, which also holds the advisory lock of its id, and
		// River's): a closed listener is not ready, rightly.
		// The sessions the last round closed are made again as serve
		// needs them: wait for one to be idle.
		var killed []int
		waitUntil(t, 10*time.Second, "an idle session of serve's to close", func() bool {
			rows, err := b.pool.Query(ctx, `SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state = 'idle'
  AND query NOT LIKE 'LISTEN%' AND query NOT LIKE '%pg_try_advisory_lock%'`)
			if err != nil {
				t.Fatal(err)
			}
			killed, err = pgx.CollectRows(rows, pgx.RowTo[int])
			if err != nil {
				t.Fatal(err)
			}
			return len(killed) > 0
		})
		if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, killed); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the closed sessions gone", func() bool {
			var n int
			err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)`, killed).Scan(&n)
			return err == nil && n == 0
		})
		if code, body := d.get("/readyz"); code != 200 {
			t.Fatalf("/readyz after %d of serve's connections were closed: %d %s", len(killed), code, body)
		}
	}
}

// A server that refuses connections is asked once per probe, not once per
// connection the pool may hold: a storm of connection attempts on a
// server out of connections (a review's).
func TestReadyzPingAsksARefusingServerOnce(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/refusing?sslmode=disable&connect_timeout=1&pool_max_conns=8")
	if err != nil {
		t.Fatal(err)
	}
	var connects atomic.Int32
	cfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error { connects.Add(1); return nil }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyzPing)
	defer cancel()
	if err := pingPool(ctx, pool); err == nil {
		t.Fatal("a ping of a refusing server succeeded")
	}
	if n := connects.Load(); n != 1 {
		t.Fatalf("%d connection attempts for one probe, want 1", n)
	}
}

// With every pooled connection waiting on a lock of outbox_messages,
// /readyz cannot ping either: it says the database did not answer within
// its 2 s, and why that may be, not that the database is unreachable (a
// trial's operator, the database up, was told so during a VACUUM FULL).
func TestReadyzBehindALockSaysWhatItKnows(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	d := startDaemon(t, serveConfig(t, b.url+"&pool_max_conns=2&application_name=outboxd-locked", b.sink.URL()))
	d.waitReady(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// Every lane woken (a payload it cannot read wakes them all): their
	// claims queue for the pool ahead of /readyz's ping. Idle lanes park
	// rather than claim, and the idle probe gives up on the lock after
	// 1 s, its connection then taken by a claim.
	if _, err := b.pool.Exec(ctx, `SELECT pg_notify('outboxd_outbox', 'every lane')`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "both pooled connections of serve waiting on the lock", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'outboxd-locked' AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n >= 2
	})
	code, body := d.get("/readyz")
	if code != 503 || !strings.Contains(body, "no answer from the database within 2s") || !strings.Contains(body, "every pooled connection busy") {
		t.Fatalf("/readyz with the pool waiting on a lock: %d %s", code, body)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	d.waitReady(t)
}
