package main

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// A multi-host URL whose first host accepts and never answers (an old
// primary gone silent): --connect-timeout, or else the URL's
// connect_timeout, bounds each host, so the next one is tried. It bounded
// the whole first connection: serve, send and outbox exited without trying
// the second host (an operator's failover trial).
func TestConnectTimeoutBoundsEachHost(t *testing.T) {
	t.Parallel()
	silent, accepted := silentServer(t)
	addr := strings.TrimPrefix(silent[:strings.Index(silent, "/silent")], "postgres://postgres@")
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr + "," + u.Host
	multi := u.String()
	if r := outboxd(t, nil, "outbox", "paused", "--connect-timeout", "2s", "--database-url", multi); r.code != 0 {
		t.Fatalf("--connect-timeout 2s, silent first host: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(accepted) == 0 {
		t.Fatal("the silent host was never tried: the test proves nothing")
	}
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	if r := outboxd(t, nil, "outbox", "paused", "--database-url", u.String()); r.code != 0 {
		t.Fatalf("connect_timeout=2, silent first host: exit %d, stderr %q", r.code, r.stderr)
	}
	d := startDaemon(t, serveConfig(t, multi, "http://127.0.0.1:9/hook"), "--connect-timeout", "2s")
	d.waitReady(t)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, d.stderr.String())
	}
}

// A server without TLS refuses the first attempt of sslmode=prefer (pgx's
// default): a connection that then fails for another reason (here the
// role's connection limit) is described by that reason alone. /readyz
// showed "tls error: server refused TLS connection" for a healthy server
// out of connections (an operator's trial).
func TestConnectErrorLeavesOutTheRefusedTLSAttempt(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t) // initdb's default: no TLS
	direct := cluster.URL(t)
	pool := pgtest.Connect(t, direct)
	var ssl string
	if err := pool.QueryRow(context.Background(), `SHOW ssl`).Scan(&ssl); err != nil || ssl != "off" {
		t.Fatalf("the test needs a server without TLS: ssl %q, %v", ssl, err)
	}
	if _, err := pool.Exec(context.Background(), `CREATE ROLE limited LOGIN CONNECTION LIMIT 0`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("limited")
	q := u.Query()
	q.Set("sslmode", "prefer")
	u.RawQuery = q.Encode()
	r := outboxd(t, nil, "outbox", "paused", "--database-url", u.String())
	if r.code != 1 || !strings.Contains(r.stderr, `too many connections for role "limited"`) || strings.Contains(r.stderr, "tls") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
