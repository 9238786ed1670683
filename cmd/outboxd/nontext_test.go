package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A filter or an argument that is not UTF-8 text is a usage mistake (exit
// 2), said without echoing the bytes: PostgreSQL's raw "invalid byte
// sequence" came back with exit 1, and `inbox show` printed the byte back
// (an operator's trial). It is refused before any connection: the
// database URL here leads nowhere.
func TestFiltersThatAreNotTextAreUsageMistakes(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"outbox", "dead", "--type", "\xff"}, "--type is not UTF-8 text"},
		{[]string{"outbox", "dead", "--destination", "a\xffb"}, "--destination is not UTF-8 text"},
		{[]string{"inbox", "show", "s\xff", "ev"}, "argument 1 is not UTF-8 text"},
		{[]string{"inbox", "find", "em\xffail=x"}, "argument 1 is not UTF-8 text"},
		{[]string{"inbox", "failures", "--event", "e\xff"}, "--event is not UTF-8 text"},
	} {
		r := outboxd(t, env, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr+r.stdout, "\xff") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q, the byte not echoed", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// An empty filter is refused as --destination and --type are: from an
// unset shell variable it listed everything, or nothing (a trial's).
func TestInboxFiltersThatAreEmptyAreRefused(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inbox", "failures", "--source", ""}, "--source is empty"},
		{[]string{"inbox", "failures", "--event", " "}, "--event is empty"},
		{[]string{"inbox", "find", "email="}, `find "email=": want NAME=VALUE, with a value`},
	} {
		if r := outboxd(t, env, tc.args...); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// An argument's control characters are escaped in the error that names
// it: an ESC sequence in a source or destination name coloured the
// operator's terminal (a trial's).
func TestArgumentsAreEscapedInErrors(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	db := []string{"--database-url", b.url}
	for _, args := range [][]string{{"inbox", "show", "\x1b[31mRED", "ev"}, {"outbox", "resume", "\x1b[31mRED"}} {
		r := runIn(append(args, db...)...)
		if r.code != 1 || strings.Contains(r.stderr, "\x1b") || !strings.Contains(r.stderr, `\x1b[31mRED`) {
			t.Errorf("%q: exit %d, stderr %q; want 1 and the ESC escaped", args, r.code, r.stderr)
		}
	}
}

// An index another run is still building (CREATE INDEX CONCURRENTLY
// waiting for a transaction) is said so, not reported as cut short with
// the advice to drop it, which would break that run (a re-trial's, while a
// down rebuilt an index and an up ran beside it).
func TestAnIndexBeingBuiltIsNotCalledCutShort(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	// A snapshot held (REPEATABLE READ): the build waits for it.
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM outboxd.outbox_messages`); err != nil {
		t.Fatal(err)
	}
	built := make(chan error, 1)
	go func() {
		_, err := b.pool.Exec(ctx, `CREATE INDEX CONCURRENTLY test_build ON outboxd.outbox_messages (type)`)
		built <- err
	}()
	waitUntil(t, 20*time.Second, "the build waiting for the open transaction", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid WHERE c.relname = 'test_build'`).Scan(&n)
		return err == nil && n == 1
	})
	r := runIn("migrate", "up", "--database-url", b.url)
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "index outboxd.test_build is being built") || strings.Contains(r.stdout+r.stderr, "DROP INDEX") {
		t.Fatalf("migrate up beside a build: %+v", r)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
}
