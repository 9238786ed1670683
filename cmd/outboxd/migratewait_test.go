package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// migrate up behind a transaction that holds an old snapshot: the index
// build of migration 16 waits for it, and migrate says so on stderr, naming
// its pid (about every 10 s). Killed there (SIGKILL: no cancel request
// reaches the server), the build stops on the server within seconds (it
// checks its client every second) instead of running on to its end, and
// the next run finishes the migration with the indexes it should leave.
func TestMigrateSaysWhatItWaitsForAndStopsWhenKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	pool := pgtest.Connect(t, url)
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Rollback(ctx) })
	var holderPID int
	if _, err := holder.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
		t.Fatal(err)
	}
	// Its snapshot, taken here, is older than the build's.
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT count(*) FROM outboxd.outbox_keys) k`).Scan(&holderPID); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "migrate", "up")
	cmd.Env = append(os.Environ(), "OUTBOXD_TEST_MAIN=1", "DATABASE_URL="+url)
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	want := "sessions=\"pid " + strconv.Itoa(holderPID) + " (idle in transaction, transaction open "
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("migrate up never named the session it waits for (%s); stderr:\n%s", want, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "step=\"build index outbox_messages_caller_key_idx\"") {
		t.Fatalf("the notice does not name the step:\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	building := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The bound ends a failing test; the holder stays open throughout, so
	// without the check the build would wait on for as long as it.
	deadline = time.Now().Add(30 * time.Second)
	for building() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the index build went on on the server after migrate was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := outboxd(t, []string{"DATABASE_URL=" + url}, "migrate", "up"); r.code != 0 || !strings.HasPrefix(r.stdout, "up   00016 ") {
		t.Fatalf("migrate up after the kill: %+v", r)
	}
	var indexes string
	if err := pool.QueryRow(ctx, `SELECT string_agg(indexrelid::regclass::text || ' ' || indisvalid, ', ' ORDER BY 1)
		FROM pg_index WHERE indexrelid::regclass::text IN ('outboxd.outbox_messages_caller_key_idx', 'outboxd.outbox_messages_given_key_idx')`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != "outboxd.outbox_messages_caller_key_idx true" {
		t.Fatalf("key indexes after the second run: %s", indexes)
	}
}
