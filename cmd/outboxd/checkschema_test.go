package main

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// serve --check=connect says "migrated" only when every migration of this
// binary is applied: on a schema one migration behind, serve refuses to
// start (the dispatcher's probe), and so must the deploy hook's check;
// outbox show names what is missing instead of calling the schema empty.
func TestServeCheckRefusesAnOlderSchema(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, "good.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	env := []string{"DATABASE_URL=" + url}
	// Without migrations 15 and 16 the dispatcher starts (they are the
	// producers', applied once they all run this version): the check
	// passes and says what is left.
	if _, err := m.DownTo(context.Background(), 14); err != nil {
		t.Fatal(err)
	}
	r := outboxd(t, env, "serve", "--config", good, "--check=connect")
	want := "database: connected, schema outboxd migrated for this dispatcher (not applied: 15, 16, which producers of this version work without: run outboxd migrate up --schema outboxd once every producer runs this version)"
	if firstLine(r.stdout) != want {
		t.Fatalf("--check=connect on version 14: exit %d, stdout %q; want first %q", r.code, r.stdout, want)
	}
	if _, err := m.DownTo(context.Background(), 12); err != nil {
		t.Fatal(err)
	}
	r = outboxd(t, env, "serve", "--config", good, "--check=connect")
	want = "outboxd serve: schema outboxd is older than this outboxd (not applied: 13, 14, 15, 16; serve would refuse to start): run outboxd migrate up --schema outboxd"
	if r.code != 1 || firstLine(r.stderr) != want {
		t.Fatalf("--check=connect on version 12: exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, want)
	}
	if _, err := pgtest.Connect(t, url).Exec(context.Background(), `INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
		VALUES ('0193a4c2-0000-7000-8000-000000000001', 'a', '\x00', 'k')`); err != nil {
		t.Fatal(err)
	}
	r = outboxd(t, env, "outbox", "show", "0193a4c2-0000-7000-8000-000000000001")
	if r.code != 1 || !strings.Contains(r.stderr, "older than this outboxd (no outbox_attempt_log): run outboxd migrate up") {
		t.Fatalf("outbox show on version 12: exit %d, stderr %q", r.code, r.stderr)
	}
}

// An index that a CONCURRENTLY build or drop cut short left invalid is
// named on its own line by --check=connect: nothing else reports it, and
// every insert still writes to it (migration 15's full key index after a
// down cut short and an up, which then has nothing to do).
func TestServeCheckNamesInvalidIndexes(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	// The user's own table in the schema, with an invalid index: not
	// outboxd's to advise on (migrate down would revert a migration).
	if _, err := pgtest.Connect(t, url).Exec(context.Background(), `CREATE UNIQUE INDEX outbox_messages_idempotency_key_idx ON outboxd.outbox_messages (destination, idempotency_key);
		UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'outboxd.outbox_messages_idempotency_key_idx'::regclass;
		CREATE TABLE outboxd.their_things (n int); CREATE INDEX their_things_n ON outboxd.their_things (n);
		UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'outboxd.their_things_n'::regclass`); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, "good.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	r := outboxd(t, []string{"DATABASE_URL=" + url}, "serve", "--config", good, "--check=connect")
	want := "database: index outboxd.outbox_messages_idempotency_key_idx is invalid (a CREATE or DROP INDEX CONCURRENTLY cut short) and still written on every insert: " +
		"run the migration that was cut short again (outboxd migrate up, or the down that was cut short), or drop it with DROP INDEX CONCURRENTLY outboxd.outbox_messages_idempotency_key_idx\n"
	if lines := strings.SplitAfter(r.stdout, "\n"); len(lines) < 2 || lines[0] != "database: connected, schema outboxd migrated\n" || lines[1] != want {
		t.Fatalf("--check=connect with an invalid index: exit %d, stdout %q", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, "their_things") {
		t.Fatalf("--check=connect advised on the user's own index:\n%s", r.stdout)
	}
	// migrate says so too, after any action (here a read-only one).
	r = outboxd(t, []string{"DATABASE_URL=" + url}, "migrate", "status")
	if r.code != 0 || !strings.Contains(r.stderr, "outboxd migrate: warning: "+strings.TrimPrefix(want, "database: ")) {
		t.Fatalf("migrate status with an invalid index: exit %d, stderr %q", r.code, r.stderr)
	}
	// A build cut short before its index was ready: inserts skip it.
	if _, err := pgtest.Connect(t, url).Exec(context.Background(), `UPDATE pg_index SET indisready = false WHERE indexrelid = 'outboxd.outbox_messages_idempotency_key_idx'::regclass`); err != nil {
		t.Fatal(err)
	}
	r = outboxd(t, []string{"DATABASE_URL=" + url}, "serve", "--config", good, "--check=connect")
	want = strings.Replace(want, "still written on every insert", "not written by inserts", 1)
	if lines := strings.SplitAfter(r.stdout, "\n"); len(lines) < 2 || lines[1] != want {
		t.Fatalf("--check=connect with an index not ready: exit %d, stdout %q", r.code, r.stdout)
	}
}
