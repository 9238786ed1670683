package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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
	url, pool := killedMidBuild(t, 15, 16, "outbox_messages_caller_key_idx", "CREATE UNIQUE INDEX CONCURRENTLY")
	var indexes string
	if err := pool.QueryRow(context.Background(), `SELECT string_agg(indexrelid::regclass::text || ' ' || indisvalid, ', ' ORDER BY indexrelid::regclass::text)
		FROM pg_index WHERE indexrelid::regclass::text IN ('outboxd.outbox_messages_caller_key_idx', 'outboxd.outbox_messages_given_key_idx')`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != "outboxd.outbox_messages_caller_key_idx true" {
		t.Fatalf("key indexes after the second run (%s): %s", url, indexes)
	}
}

// The same for migration 14, a SQL file until it was made a Go migration
// for this: killed, its build ran on to its end unseen.
func TestMigrate14SaysWhatItWaitsForAndStopsWhenKilled(t *testing.T) {
	t.Parallel()
	_, pool := killedMidBuild(t, 13, 14, "outbox_messages_retry_heads_idx", "CREATE INDEX CONCURRENTLY")
	var valid bool
	if err := pool.QueryRow(context.Background(), `SELECT indisvalid FROM pg_index WHERE indexrelid = 'outboxd.outbox_messages_retry_heads_idx'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("retry heads index after the second run: valid %v, %v", valid, err)
	}
}

// killedMidBuild migrates a new database to from, then runs migrate up
// --to to behind an old snapshot until it names the session its build of
// index (a statement starting with create) waits for, kills it, checks that
// the build ends on the server, ends the snapshot and runs migrate up --to
// to again.
func killedMidBuild(t *testing.T, from, to int64, index, create string) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	url, pool, holder, holderPID := behindASnapshot(t, from)

	target := strconv.FormatInt(to, 10)
	cmd := exec.Command(os.Args[0], "migrate", "up", "--to", target)
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
	if !strings.Contains(stderr.String(), "step=\"build index "+index+"\"") {
		t.Fatalf("the notice does not name the step:\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	building := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1 || '%'`, create).Scan(&n); err != nil {
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
	if r := outboxd(t, []string{"DATABASE_URL=" + url}, "migrate", "up", "--to", target); r.code != 0 || !strings.HasPrefix(r.stdout, "up   000"+target+" ") {
		t.Fatalf("migrate up after the kill: %+v", r)
	}
	return url, pool
}
