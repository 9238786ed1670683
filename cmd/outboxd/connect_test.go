package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
)

// A multi-host URL whose first host accepts and never answers (an old
// primary gone silent): --connect-timeout bounds each address, so the next
// one is tried, for serve, migrate and the one-shot commands. It bounded
// the whole first connection: they exited without trying the second host
// (an operator's failover trial).
func TestConnectTimeoutBoundsEachHost(t *testing.T) {
	t.Parallel()
	silent, accepted := silentServer(t)
	addr := strings.TrimPrefix(silent[:strings.Index(silent, "/silent")], "postgres://postgres@")
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr + "," + u.Host
	q := u.Query()
	// The harness's connect_timeout out: serve runs at the default below.
	// target_session_attrs as docs/operations.md asks: serve keeps to the
	// address its last connection reached only then.
	q.Del("connect_timeout")
	q.Set("target_session_attrs", "read-write")
	u.RawQuery = q.Encode()
	multi := u.String()
	for _, args := range [][]string{{"outbox", "paused"}, {"migrate", "status"}} {
		if r := outboxd(t, nil, append(args, "--connect-timeout", "2s", "--database-url", multi)...); r.code != 0 {
			t.Fatalf("%v, silent first host: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if len(accepted) == 0 {
		t.Fatal("the silent host was never tried: the test proves nothing")
	}
	// serve at the default bound (10 s): its pool's later connections go
	// to the host its last one reached, not to the silent host first,
	// whose 10 s each outlasted what River waits for a connection (serve
	// never started: an operator's trial). lease_ttl over a connection
	// attempt: balancing and River's resignation (1 s with a 1 s lease)
	// would meet the silent host at the listener's reconnections.
	config := serveConfig(t, multi, "http://127.0.0.1:9/hook")
	setLeaseTTL(t, config, "10s")
	before := len(accepted)
	d := startDaemon(t, config)
	waitUntil(t, 60*time.Second, "/readyz 200", func() bool { code, _ := d.get("/readyz"); return code == 200 })
	t.Logf("serve ready; the silent host took %d of its connections", len(accepted)-before)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, d.stderr.String())
	}
	if strings.Contains(d.stderr.String(), "without target_session_attrs") {
		t.Fatalf("warned of a URL that asks for a writable host:\n%s", d.stderr.String())
	}
}

// A URL that names several hosts without asking for a writable one gets a
// warning at serve's start: its connections try the hosts in order each
// time (serve keeps to the last one's address only when the URL asks for
// a role) and may land on a standby.
func TestServeWarnsOfSeveralHostsWithoutARole(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	refusing := freeAddr(t)
	u.Host = refusing + "," + u.Host
	d := startDaemon(t, serveConfig(t, u.String(), "http://127.0.0.1:9/hook"))
	d.waitReady(t)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, d.stderr.String())
	}
	want := `"hosts":"` + refusing + ","
	if out := d.stderr.String(); !strings.Contains(out, "without target_session_attrs=read-write") || !strings.Contains(out, want) {
		t.Fatalf("no warning naming the hosts (%s):\n%s", want, out)
	}
}

// Without the flag, the URL's connect_timeout is the bound; with it, the
// flag's, the dial included (pgx's dialer for a URL's connect_timeout
// bounded the dial by it, whatever the flag said).
func TestConnectTimeoutFromTheURLOrTheFlag(t *testing.T) {
	t.Parallel()
	silent, _ := silentServer(t) // its URL sets connect_timeout=60
	oneSecond := strings.Replace(silent, "connect_timeout=60", "connect_timeout=1", 1)
	r := outboxd(t, nil, "outbox", "paused", "--database-url", oneSecond)
	if want := "no answer within 1s (the URL's connect_timeout)"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
	// pgx reads PGCONNECT_TIMEOUT where the URL has none: named as such
	// (it was called the URL's).
	r = outboxd(t, []string{"PGCONNECT_TIMEOUT=1"}, "outbox", "paused", "--database-url", strings.Replace(silent, "&connect_timeout=60", "", 1))
	if want := "no answer within 1s (PGCONNECT_TIMEOUT)"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
	dropping := droppingServer(t)
	start := time.Now()
	r = outboxd(t, nil, "outbox", "paused", "--connect-timeout", "3s", "--database-url", "postgres://postgres@"+dropping+"/x?sslmode=disable&connect_timeout=1")
	took := time.Since(start)
	if want := "cannot connect to PostgreSQL at " + dropping + " (127.0.0.1): no answer within 3s (--connect-timeout)"; r.code != 1 || firstLine(r.stderr) != "outboxd outbox: "+want {
		t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
	if took < 3*time.Second {
		t.Fatalf("gave up after %s, before --connect-timeout's 3s", took)
	}
}

// A server that takes the connection and then does not answer the first
// query: the error names it (it named every host of the URL as silent).
func TestConnectedServerThatStopsAnswering(t *testing.T) {
	t.Parallel()
	direct := pgtest.URL(t)
	for _, args := range [][]string{{"outbox", "paused"}, {"migrate", "status"}} {
		proxy := newFreezer(t, hostOf(t, direct))
		proxy.freezeOnReady.Store(true)
		r := outboxd(t, nil, append(args, "--connect-timeout", "1s", "--database-url", proxy.via(t, direct))...)
		want := "connected to PostgreSQL at " + proxy.ln.Addr().String() + ", which then did not answer a query within 1s (--connect-timeout)"
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("%v: exit %d, stderr %q; want %q", args, r.code, r.stderr, want)
		}
	}
}

// A stop (Ctrl-C) while the first query waits is a stop, not the
// server's silence: it was reported as "did not answer a query within"
// the bound (a review).
func TestStopWhileTheFirstQueryWaits(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"outbox", "paused"}, {"migrate", "status"}} { // a pool, database/sql
		stopWhileTheFirstQueryWaits(t, args)
	}
}

func stopWhileTheFirstQueryWaits(t *testing.T, args []string) {
	direct := pgtest.URL(t)
	proxy := newFreezer(t, hostOf(t, direct))
	proxy.freezeOnReady.Store(true)
	cmd := exec.Command(os.Args[0], append(args, "--connect-timeout", "60s", "--database-url", proxy.via(t, direct))...)
	cmd.Env = append(os.Environ(), "OUTBOXD_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitUntil(t, 30*time.Second, "the first query to wait on the frozen proxy", proxy.frozen)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no exit within 30 s of the interrupt")
	}
	if !strings.Contains(stderr.String(), "stopped while connecting to the database") {
		t.Fatalf("%v: a stop not reported as such: %q", args, stderr.String())
	}
}

// droppingServer is an address whose connection attempts get no answer at
// all, as a host gone from the network: a listener whose accept queue is
// full, so that the kernel drops further SYNs.
func droppingServer(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 8 { // never accepted: they fill the queue
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Fatal("the listener's accept queue never filled")
	return ""
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

	// serve's log lines: an error value is written the same way.
	_, err = pgx.Connect(context.Background(), u.String())
	if line := redactAttr(nil, slog.Any("error", err)).Value.String(); err == nil || strings.Contains(line, "tls") ||
		strings.Contains(line, "\n") || !strings.Contains(line, `too many connections for role "limited"`) {
		t.Fatalf("logged as %q", line)
	}

	// /readyz while the dispatcher's listener cannot connect again: its
	// failure, in one line, without the refused TLS attempt.
	u.User = url.User("postgres")
	s := sink.Start()
	t.Cleanup(s.Close)
	config := serveConfig(t, u.String(), s.URL())
	setLeaseTTL(t, config, "10s")
	d := startDaemon(t, config)
	d.waitReady(t)
	ctx := context.Background()
	other := *u
	other.Path = "/postgres" // a database cannot refuse connections from its own sessions
	admin := pgtest.Connect(t, other.String())
	allow := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %t`, pgx.Identifier{u.Path[1:]}.Sanitize(), on)); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'outboxd serve' AND (query LIKE 'LISTEN%' OR query LIKE '%pg_try_advisory_lock%')`); err != nil {
		t.Fatal(err)
	}
	var body string
	waitUntil(t, 30*time.Second, "/readyz naming the listener's failure", func() bool {
		var code int
		code, body = d.get("/readyz")
		return code == 503 && strings.Contains(body, "is not currently accepting connections")
	})
	if strings.Contains(body, "tls") || strings.Count(strings.TrimSpace(body), "\n") > 0 || !strings.Contains(body, "listening for commits") {
		t.Fatalf("/readyz: %q", body)
	}
	allow(true)
	d.waitReady(t)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
