package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// serve --migrate behind a transaction with an old snapshot, which
// migration 16's concurrent index build waits for: the ops port answers
// throughout (a liveness probe that found it closed would restart the
// process and cut the build short, every time), /readyz says what serve
// waits for, and once the transaction ends serve migrates and gets ready.
func TestServeMigrateAnswersProbesWhileItBuilds(t *testing.T) {
	t.Parallel()
	url, pool, holder, _ := behindASnapshot(t, 15)
	d := startDaemon(t, serveConfig(t, url, "http://127.0.0.1:9/hook"), "--migrate")
	awaitBuildWaiting(t, pool)
	get := d.get
	if code, body := get("/healthz"); code != 200 {
		t.Fatalf("/healthz while migrating: %d %s", code, body)
	}
	// It says what the migration waits for: the build of migration 16's
	// index.
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body,
		"starting: applying migrations; last: building index concurrently") || !strings.Contains(body, "(index outboxd.outbox_messages_caller_key_idx)") {
		t.Fatalf("/readyz while migrating: %d %s", code, body)
	}
	// Scraped as up, saying it starts; no database series yet.
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "\noutboxd_starting 1\n") ||
		!strings.Contains(body, "outboxd_build_info{") || strings.Contains(body, "outboxd_database_up") {
		t.Fatalf("/metrics while migrating: %d\n%s", code, body)
	}
	if err := holder.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "/readyz after the migration", func() bool { code, _ := get("/readyz"); return code == 200 })
	if _, body := get("/metrics"); strings.Contains(body, "outboxd_starting") || !strings.Contains(body, "outboxd_database_up") {
		t.Fatalf("/metrics once started:\n%s", body)
	}
	if v := schemaVersion(t, pool); v != 16 {
		t.Fatalf("version %d after serve --migrate, want 16", v)
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// SIGTERM while serve --migrate waits in an index build: serve stops at
// once, says the migrations are unfinished, and leaves no build running
// on the server (here the driver's cancel request ends it; a SIGKILL,
// which sends none, is TestMigrateSaysWhatItWaitsForAndStopsWhenKilled's);
// the next run finishes them.
func TestServeMigrateStopsCleanlyWhileItBuilds(t *testing.T) {
	t.Parallel()
	url, pool, holder, _ := behindASnapshot(t, 15)
	d := startDaemon(t, serveConfig(t, url, "http://127.0.0.1:9/hook"), "--migrate")
	awaitBuildWaiting(t, pool)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM while migrating", code)
	}
	if !strings.Contains(d.stderr.String(), "stopped while applying migrations") {
		t.Fatalf("the log does not say the migrations were cut short:\n%s", d.stderr.String())
	}
	// The holder stays open: a build still running would wait on for it.
	waitUntil(t, 30*time.Second, "the index build to end on the server", func() bool { return buildsRunning(t, pool) == 0 })
	if err := holder.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A serve without --migrate starts, warning of the index the build
	// left invalid.
	plain := startDaemon(t, serveConfig(t, url, "http://127.0.0.1:9/hook"))
	waitUntil(t, 30*time.Second, "the invalid index warning", func() bool {
		return strings.Contains(plain.stderr.String(), "index outboxd.outbox_messages_caller_key_idx is invalid")
	})
	if code := plain.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if r := outboxd(t, []string{"DATABASE_URL=" + url}, "migrate", "up"); r.code != 0 || schemaVersion(t, pool) != 16 {
		t.Fatalf("migrate up after the stop: %+v", r)
	}
}

// behindASnapshot returns a new database at version and a REPEATABLE
// READ transaction on it whose snapshot is taken (older than any index
// build that starts later), with its backend's pid.
func behindASnapshot(t *testing.T, version int64) (url string, pool *pgxpool.Pool, holder pgx.Tx, pid int) {
	t.Helper()
	ctx := context.Background()
	url = pgtest.EmptyURL(t)
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	pool = pgtest.Connect(t, url)
	holder, err = pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Rollback(ctx) })
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT count(*) FROM outboxd.outbox_keys) k`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return url, pool, holder, pid
}

// awaitBuildWaiting returns once a concurrent index build of this database
// waits for a lock (another transaction's end).
func awaitBuildWaiting(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	waitUntil(t, 60*time.Second, "the index build to wait", func() bool {
		var waits bool
		if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock')`).Scan(&waits); err != nil {
			t.Fatal(err)
		}
		return waits
	})
}

func buildsRunning(t *testing.T, pool *pgxpool.Pool) (n int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func schemaVersion(t *testing.T, pool *pgxpool.Pool) (v int64) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT max(version_id) FROM outboxd.outboxd_migrations WHERE is_applied`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// SIGTERM while serve connects to a database that never answers: a stop,
// exit 0, not an error (it exited 1 with the context's error); with
// --migrate, /readyz says it connects, not that it migrates.
func TestServeStoppedWhileConnecting(t *testing.T) {
	t.Parallel()
	for _, migrate := range []bool{false, true} {
		t.Run(fmt.Sprint("migrate=", migrate), func(t *testing.T) {
			t.Parallel()
			url, accepted := silentServer(t)
			var extra []string
			if migrate {
				extra = append(extra, "--migrate")
			}
			d := startDaemon(t, serveConfig(t, url, "http://127.0.0.1:9/hook"), extra...)
			waitUntil(t, 30*time.Second, "a connection to the silent server", func() bool { return len(accepted) > 0 })
			if migrate {
				if code, body := d.get("/readyz"); code != 503 || !strings.Contains(body, "starting: connecting to the database") {
					t.Fatalf("/readyz while connecting: %d %s", code, body)
				}
			}
			if code := d.terminate(t); code != 0 {
				t.Fatalf("exit %d after SIGTERM while connecting:\n%s", code, d.stderr.String())
			}
			if !strings.Contains(d.stderr.String(), "stopped before the dispatcher started") {
				t.Fatalf("the log does not say it stopped:\n%s", d.stderr.String())
			}
		})
	}
}

// A console address in use stops serve --migrate before it migrates
// anything (a trial's fresh database went from 0 to 16, with the
// migrations that wait for every producer's upgrade, before serve failed
// on it), naming the address.
func TestServeConsoleAddressInUseMigratesNothing(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	url := pgtest.EmptyURL(t)
	config := serveConfig(t, url, "http://127.0.0.1:9/hook")
	withConsole := readFile(t, config) + "console:\n  listen: " + taken.Addr().String() + "\n  insecure_no_auth: true\n"
	path := writeFile(t, "console.yaml", withConsole)
	r := outboxd(t, nil, "serve", "--config", path, "--listen", freeAddr(t), "--migrate")
	if r.code != 1 || !strings.Contains(r.stderr, "console: listen on console.listen ("+taken.Addr().String()+"): bind: address already in use") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var tables int
	if err := pgtest.SQLDB(t, url).QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'outboxd'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d tables of outboxd (%v): serve migrated before it failed", tables, err)
	}
}

// While serve stops behind a delivery in flight, /readyz says it stops
// (it blamed the dispatcher's commits or leases), /healthz and /metrics
// still answer.
func TestServeReadyzSaysItStops(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	release := make(chan struct{})
	b.sink.Respond = func(r *http.Request, _ []byte) (int, http.Header) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusOK, nil
	}
	defer close(release)
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	b.enqueue(t, 1, 1)
	waitUntil(t, 20*time.Second, "a delivery in flight", func() bool { return b.sink.InFlight() == 1 })
	// Its sessions are named in pg_stat_activity (a trial could not tell
	// one daemon's from another's).
	var named int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'outboxd serve'`).Scan(&named); err != nil || named == 0 {
		t.Fatalf("%d sessions named 'outboxd serve' (%v)", named, err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "/readyz saying it stops", func() bool {
		code, body := d.get("/readyz")
		return code == 503 && strings.Contains(body, "stopping: finishing in-flight deliveries")
	})
	if code, _ := d.get("/healthz"); code != 200 {
		t.Fatalf("/healthz while stopping: %d", code)
	}
	if code, body := d.get("/metrics"); code != 200 || !strings.Contains(body, "outboxd_database_up") {
		t.Fatalf("/metrics while stopping: %d", code)
	}
}

// A URL that names its sessions keeps its name, given as a parameter or
// inside options (which a review found overridden by ours).
func TestServeKeepsTheURLsApplicationName(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	for _, suffix := range []string{"&application_name=mine-param", "&options=-c%20application_name%3Dmine-options",
		"&options=-c%20Application_Name%3Dmine-case"} {
		name := suffix[strings.LastIndexAny(suffix, "=D")+1:]
		d := startDaemon(t, serveConfig(t, b.url+suffix, b.sink.URL()))
		waitUntil(t, 20*time.Second, "/readyz", func() bool { code, _ := d.get("/readyz"); return code == 200 })
		var mine, ours int
		if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE application_name = $1),
			count(*) FILTER (WHERE application_name = 'outboxd serve') FROM pg_stat_activity WHERE datname = current_database()`, name).Scan(&mine, &ours); err != nil {
			t.Fatal(err)
		}
		if mine == 0 || ours != 0 {
			t.Fatalf("%s: %d sessions named %s, %d 'outboxd serve'", suffix, mine, name, ours)
		}
		if code := d.terminate(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
}

// silentServer is a database URL whose server accepts connections and
// never answers, and how many it accepted so far.
func silentServer(t *testing.T) (string, chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		for len(accepted) > 0 {
			_ = (<-accepted).Close()
		}
	})
	return "postgres://postgres@" + ln.Addr().String() + "/silent?sslmode=disable&connect_timeout=60", accepted
}

// While serve starts, the console's address answers 503 (bound early, it
// held connections unanswered until the console started).
func TestServeConsoleAnswersWhileStarting(t *testing.T) {
	t.Parallel()
	url, accepted := silentServer(t)
	consoleAddr := freeAddr(t)
	path := writeFile(t, "console.yaml", readFile(t, serveConfig(t, url, "http://127.0.0.1:9/hook"))+
		"console:\n  listen: "+consoleAddr+"\n  insecure_no_auth: true\n")
	d := startDaemon(t, path)
	waitUntil(t, 30*time.Second, "a connection to the silent server", func() bool { return len(accepted) > 0 })
	resp, err := probeClient.Get("http://" + consoleAddr + "/")
	if err != nil {
		t.Fatalf("the console while serve starts: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("the console while serve starts: %d", resp.StatusCode)
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A server that accepts and never answers: the error names it (host and
// port, never the password) and the bound it waited (it said only "timed
// out").
func TestConnectTimeoutNamesTheServer(t *testing.T) {
	t.Parallel()
	url, _ := silentServer(t)
	url = strings.Replace(url, "postgres@", "postgres:S3cretPW@", 1)
	host := strings.TrimPrefix(url[:strings.Index(url, "/silent")], "postgres://postgres:S3cretPW@")
	r := outboxd(t, nil, "outbox", "dead", "--connect-timeout", "1s", "--database-url", url)
	want := "outboxd outbox: cannot connect to PostgreSQL at " + host + " (127.0.0.1): no answer within 1s (--connect-timeout)"
	if r.code != 1 || firstLine(r.stderr) != want || strings.Contains(r.stderr+r.stdout, "S3cretPW") {
		t.Fatalf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, want)
	}
	// Two silent hosts, then one that refuses: each named with its reason.
	refusing := freeAddr(t)
	multi := strings.Replace(url, host, host+","+host+","+refusing, 1)
	r = outboxd(t, nil, "outbox", "dead", "--connect-timeout", "1s", "--database-url", multi)
	want = "outboxd outbox: cannot connect to PostgreSQL at " + host + " (127.0.0.1): no answer within 1s (--connect-timeout); " + refusing + " ("
	if r.code != 1 || !strings.HasPrefix(firstLine(r.stderr), want) || !strings.Contains(r.stderr, "connection refused") || strings.Contains(r.stderr+r.stdout, "S3cretPW") {
		t.Fatalf("exit %d, stderr %q; want exit 1 and %q...connection refused", r.code, r.stderr, want)
	}
}

// serve --migrate waiting for another run's migration lock says so in
// /readyz, with the holder's backend_pid (it said only "applying
// migrations (see the log)"), and migrates once the lock is free.
func TestServeMigrateReadyzNamesTheLockHolder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, 15); err != nil { // 16 pending: goose takes its lock only then
		t.Fatal(err)
	}
	pool := pgtest.Connect(t, url)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	id := int64(crc32.ChecksumIEEE([]byte("outboxd migrations outboxd"))) // migrations.lockID
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) l`, id).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, serveConfig(t, url, "http://127.0.0.1:9/hook"), "--migrate")
	want := fmt.Sprintf("starting: applying migrations; last: waiting for another migration run of this schema to end (backend_pid %d)", pid)
	waitUntil(t, 30*time.Second, "/readyz naming the lock's holder", func() bool {
		code, body := d.get("/readyz")
		return code == 503 && strings.TrimSpace(body) == want
	})
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, id); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "/readyz after the migration", func() bool { code, _ := d.get("/readyz"); return code == 200 })
	if v := schemaVersion(t, pool); v != 16 {
		t.Fatalf("version %d after serve --migrate, want 16", v)
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A dispatcher whose start waits on a lock (here a LOCK TABLE on the
// lanes, as a migration's would be) leaves serve starting: /readyz says
// so and /metrics has outboxd_starting, where the dispatcher's own handler
// answered "not ready ... (see the log)" with nothing in the log; after
// slowStartAfter the log says what the start waits for. Once the lock
// goes, serve gets ready.
func TestServeSaysItStartsWhileTheDispatcherWaitsOnALock(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	holder, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, `LOCK TABLE outboxd.outbox_lanes IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	waitUntil(t, 30*time.Second, "serve's start to wait on the lock", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.relation = 'outboxd.outbox_lanes'::regclass AND a.application_name = 'outboxd serve'`).Scan(&n)
		return err == nil && n > 0
	})
	if code, body := d.get("/readyz"); code != 503 || !strings.Contains(body, "starting: starting the dispatcher") {
		t.Fatalf("/readyz while the start waits: %d %s", code, body)
	}
	if code, body := d.get("/metrics"); code != 200 || !strings.Contains(body, "\noutboxd_starting 1\n") {
		t.Fatalf("/metrics while the start waits: %d\n%s", code, body)
	}
	waitUntil(t, slowStartAfter+30*time.Second, "the log to say the start waits", func() bool {
		return strings.Contains(d.stderr.String(), "the dispatcher has not started after 5s")
	})
	if _, body := d.get("/readyz"); !strings.Contains(body, "waiting for the database") {
		t.Fatalf("/readyz after the line: %s", body)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	d.waitReady(t)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
