package main

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// migrate status and version change nothing: a typo'd --schema leaves no
// schema behind. down --to above the applied version says so.
func TestMigrateReadOnlyAndDownTo(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.EmptyURL(t)
	db := []string{"DATABASE_URL=" + dbURL}
	// Each says on stderr that the schema was never migrated (a trial's
	// typo'd --schema answered "0" without a word).
	const note = "outboxd migrate: note: schema typo has no outboxd migrations (never migrated here, or a typo in --schema?)\n"
	r := outboxd(t, db, "migrate", "version", "--schema", "typo")
	if r.code != 0 || r.stdout != "0\n" || r.stderr != note {
		t.Fatalf("version: %+v", r)
	}
	r = outboxd(t, db, "migrate", "status", "--schema", "typo")
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")[1:]
	if r.code != 0 || len(rows) < 5 || strings.Count(r.stdout, " pending ") != len(rows) || r.stderr != note {
		t.Fatalf("status: want every migration pending: %+v", r)
	}
	r = outboxd(t, db, "migrate", "down", "--schema", "typo")
	if r.code != 0 || r.stdout != "nothing to revert: no migration is applied in schema typo\n" {
		t.Fatalf("down: %+v", r)
	}
	var schemas int
	if err := pgtest.SQLDB(t, dbURL).QueryRow(`SELECT count(*) FROM pg_namespace WHERE nspname = 'typo'`).Scan(&schemas); err != nil {
		t.Fatal(err)
	}
	if schemas != 0 {
		t.Fatal("status, version or down created the schema")
	}

	if r := outboxd(t, db, "migrate", "up"); r.code != 0 {
		t.Fatalf("up: %+v", r)
	}
	latest := strings.Fields(rows[len(rows)-1])[0]
	r = outboxd(t, db, "migrate", "down", "--to", "99")
	if want := "outboxd migrate: already below version 99: the applied version is " + latest + " (down never goes up; use migrate up)\n"; r.code != 1 || r.stderr != want {
		t.Fatalf("down --to 99: exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
	r = outboxd(t, db, "migrate", "down", "--to", latest)
	if r.code != 0 || r.stdout != "nothing to revert: already at version "+latest+"\n" {
		t.Fatalf("down --to %s: %+v", latest, r)
	}
	r = outboxd(t, db, "migrate", "status")
	if r.code != 0 || strings.Count(r.stdout, " applied ") != len(rows) {
		t.Fatalf("status after up: %+v", r)
	}
}

// Schema names that PostgreSQL would reject unquoted, or whose NOTIFY
// channel would not fit, are refused before anything is created; the
// longest allowed name works end to end.
func TestSchemaNameEdges(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.EmptyURL(t)
	db := []string{"DATABASE_URL=" + dbURL}
	long := strings.Repeat("s", dbschema.MaxLen)
	for _, tc := range []struct {
		schema, first string
	}{
		{"order", `outboxd migrate: invalid schema name "order": a reserved word in PostgreSQL; choose another name`},
		{"user", `outboxd migrate: invalid schema name "user": a reserved word in PostgreSQL; choose another name`},
		{long + "s", `outboxd migrate: invalid schema name "` + long + `s": at most 46 characters (River, which shares the schema, allows no more)`},
		{"pg_hooks", `outboxd migrate: invalid schema name "pg_hooks": names starting with pg_ are reserved for PostgreSQL's own schemas`},
		{"Bad-Name", `outboxd migrate: invalid schema name "Bad-Name": use lower-case letters, digits and underscores, starting with a letter or underscore`},
	} {
		r := outboxd(t, db, "migrate", "up", "--schema", tc.schema)
		if r.code != 2 || firstLine(r.stderr) != tc.first {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", tc.schema, r.code, r.stderr, tc.first)
		}
	}
	// serve --check refuses what serve would (River's limit).
	cfg := writeFile(t, "c.yaml", "destinations:\n  d:\n    url: http://127.0.0.1:1/\n")
	if r := outboxd(t, db, "serve", "--check", "--config", cfg, "--schema", long+"s"); r.code != 2 || !strings.Contains(r.stderr, "at most 46 characters") {
		t.Errorf("serve --check with a %d-character schema: %+v", len(long)+1, r)
	}
	// Words that are keywords but not reserved remain usable.
	for _, schema := range []string{long, "outbox_order", "name"} {
		if r := outboxd(t, db, "migrate", "up", "--schema", schema); r.code != 0 {
			t.Fatalf("up --schema %s: %+v", schema, r)
		}
		r := outboxdIn(t, db, `{"x":1}`, "send", "--schema", schema, "--destination", "d")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "enqueued") {
			t.Fatalf("send --schema %s: %+v", schema, r)
		}
	}
	// The list of reserved words matches the server's.
	rows, err := pgtest.Connect(t, dbURL).Query(context.Background(), `SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		if dbschema.Validate(w) == nil {
			t.Errorf("reserved word %q accepted as a schema name", w)
		}
	}
}

// Errors read like sentences: no repeated package prefixes, and a hint
// where one helps.
func TestErrorsForPeople(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	db := []string{"DATABASE_URL=" + b.url}
	for _, tc := range []struct {
		args  []string
		code  int
		first string
	}{
		{[]string{"outbox", "show", "0190a0f4-4b8e-7c3a-9b55-1b8f3f2f2a10"}, 1, "outboxd outbox: no message 0190a0f4-4b8e-7c3a-9b55-1b8f3f2f2a10 in schema outboxd"},
		{[]string{"outbox", "resume", "crm"}, 1, "outboxd outbox: destination crm is not paused"},
		{[]string{"outbox", "resume", ""}, 2, "outboxd outbox: resume needs an argument: NAME"},
		{[]string{"outbox", "show", " "}, 2, "outboxd outbox: show needs an argument: ID"},
		// From an unset variable: not "every destination", not "unordered".
		{[]string{"outbox", "purge", "--destination", "", "--since", "1h"}, 2, "outboxd outbox: --destination is empty: leave it out, or give it a value"},
		{[]string{"outbox", "dead", "--type", " "}, 2, "outboxd outbox: --type is empty: leave it out, or give it a value"},
		// Not "the default schema" or "$DATABASE_URL": another one than meant.
		{[]string{"outbox", "purge", "--all", "--schema", ""}, 2, "outboxd outbox: --schema is empty: leave it out, or give it a value"},
		{[]string{"migrate", "up", "--database-url", ""}, 2, "outboxd migrate: --database-url is empty: leave it out, or give it a value"},
		{[]string{"outbox", "dead", "--schema", "", "--schema", "nothere"}, 1, "outboxd outbox: schema nothere is not migrated, or older than this outboxd (no outbox_messages): run outboxd migrate up --schema nothere (as the schema's owner), or pass --schema (or set OUTBOXD_SCHEMA) if outboxd's tables are in another schema"},
		{[]string{"send", "--destination", "crm", "--idempotency-key", ""}, 2, "outboxd send: --idempotency-key is empty: leave it out, or give it a value"},
		// --id "$POD_NAME" unset: not a random id.
		{[]string{"serve", "--id", ""}, 2, "outboxd serve: --id is empty: leave it out, or give it a value"},
		{[]string{"send", "--destination", "crm", "--ordering-key", ""}, 2, "outboxd send: --ordering-key is empty: leave it out, or give it a value"},
		{[]string{"inbox", "show", "forms", "evt_1"}, 1, "outboxd inbox: no event evt_1 from source forms in schema outboxd"},
		{[]string{"outbox", "dead", "--schema", "nothere"}, 1, "outboxd outbox: schema nothere is not migrated, or older than this outboxd (no outbox_messages): run outboxd migrate up --schema nothere (as the schema's owner), or pass --schema (or set OUTBOXD_SCHEMA) if outboxd's tables are in another schema"},
		{[]string{"inbox", "failures", "--schema", "nothere"}, 1, "outboxd inbox: schema nothere is not migrated, or older than this outboxd (no inbox_failures): run outboxd migrate up --schema nothere (as the schema's owner), or pass --schema (or set OUTBOXD_SCHEMA) if outboxd's tables are in another schema"},
		{[]string{"migrate", "up", "--database-url", "mysql://app@db/app"}, 2, "outboxd migrate: invalid --database-url: outboxd needs PostgreSQL, got a mysql:// URL (want a postgres:// URL)"},
	} {
		r := outboxd(t, db, tc.args...)
		if r.code != tc.code || firstLine(r.stderr) != tc.first {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.first)
		}
	}
}
