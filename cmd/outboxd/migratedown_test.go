package main

import (
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// Any negative --to is a usage mistake, and so is a sign on any other
// (`--to -0` was read as 0 and reverted everything); nothing is reverted.
func TestMigrateDownNegativeTo(t *testing.T) {
	t.Parallel()
	db := []string{"DATABASE_URL=" + pgtest.URL(t)}
	before := outboxd(t, db, "migrate", "version")
	for _, c := range []struct{ action, to, says string }{
		{"down", "-1", "outboxd migrate: --to -1: want a version, 0 or more\n"},
		{"down", "-2", "outboxd migrate: --to -2: want a version, 0 or more\n"},
		{"down", "-0", "want a whole number without a sign"},
		{"down", "+5", "want a whole number without a sign"},
		{"up", "+5", "want a whole number without a sign"},
	} {
		r := outboxd(t, db, "migrate", c.action, "--to", c.to)
		if r.code != 2 || !strings.Contains(r.stderr, c.says) {
			t.Errorf("%s --to %s: %+v", c.action, c.to, r)
		}
	}
	if r := outboxd(t, db, "migrate", "version"); r.code != 0 || r.stdout != before.stdout || before.stdout == "0\n" {
		t.Fatalf("a migration was reverted: %+v, before %+v", r, before)
	}
}

// down --to 0 drops only a schema that outboxd created: never public, nor
// one a DBA made (with its grants) for outboxd to use.
func TestMigrateDownKeepsSchemasItDidNotCreate(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.EmptyURL(t)
	sqlDB := pgtest.SQLDB(t, dbURL)
	if _, err := sqlDB.Exec(`CREATE SCHEMA dba_made; GRANT USAGE ON SCHEMA dba_made TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	exists := func(schema string) bool {
		var ok bool
		if err := sqlDB.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	db := []string{"DATABASE_URL=" + dbURL}
	for _, schema := range []string{"public", "dba_made", "ours"} {
		if r := outboxd(t, db, "migrate", "up", "--schema", schema); r.code != 0 {
			t.Fatalf("up --schema %s: %+v", schema, r)
		}
		if r := outboxd(t, db, "migrate", "down", "--to", "0", "--schema", schema); r.code != 0 {
			t.Fatalf("down --to 0 --schema %s: %+v", schema, r)
		}
		if want := schema != "ours"; exists(schema) != want {
			t.Errorf("schema %s exists after down --to 0: %v, want %v", schema, !want, want)
		}
	}
	var acl string
	if err := sqlDB.QueryRow(`SELECT coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'dba_made'`).Scan(&acl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(acl, "=U/") {
		t.Errorf("the DBA's grant is gone: %q", acl)
	}
}

// up --to N stops after version N (migration 16 waits for every producer's
// upgrade, CHANGELOG.md); another up applies the rest. --to below 1 is a
// usage mistake; N is read in base 10 (015 is 15).
func TestMigrateUpTo(t *testing.T) {
	t.Parallel()
	db := []string{"DATABASE_URL=" + pgtest.EmptyURL(t)}
	for _, to := range []string{"0", "-1"} {
		if r := outboxd(t, db, "migrate", "up", "--to", to); r.code != 2 || !strings.HasPrefix(r.stderr, "outboxd migrate: --to "+to+": want a version, 1 or more\n") {
			t.Errorf("up --to %s: %+v", to, r)
		}
	}
	if r := outboxd(t, db, "migrate", "up", "--to", "015"); r.code != 0 || !strings.Contains(r.stdout, "up   00015 ") || strings.Contains(r.stdout, " 00016 ") {
		t.Fatalf("up --to 15: %+v", r)
	}
	if r := outboxd(t, db, "migrate", "version"); r.stdout != "15\n" {
		t.Fatalf("version after up --to 15: %+v", r)
	}
	if r := outboxd(t, db, "migrate", "up", "--to", "15"); r.code != 0 || r.stdout != "nothing to apply up to version 15\n" {
		t.Fatalf("up --to 15 again: %+v", r)
	}
	if r := outboxd(t, db, "migrate", "up"); r.code != 0 || !strings.HasPrefix(r.stdout, "up   00016 ") {
		t.Fatalf("up: %+v", r)
	}
	if r := outboxd(t, db, "migrate", "version"); r.stdout != "16\n" {
		t.Fatalf("version after up: %+v", r)
	}
}

// The commands share serve's URL, pool settings and all: migrate leaves
// pgxpool's pool_* out of what it sends the server (which refused
// pool_max_conns as an unknown parameter, so `serve --migrate` could not
// start) and refuses a bad one as the other commands do.
func TestMigrateTakesAPoolURL(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	if r := outboxd(t, nil, "migrate", "up", "--database-url", url+"&pool_max_conns=5&pool_min_conns=1"); r.code != 0 {
		t.Fatalf("up with pool settings: %+v", r)
	}
	if r := outboxd(t, nil, "migrate", "status", "--database-url", url+"&pool_max_conns=5"); r.code != 0 || strings.Contains(r.stdout, " pending ") {
		t.Fatalf("status with pool settings: %+v", r)
	}
	if r := outboxd(t, nil, "migrate", "up", "--database-url", url+"&pool_max_conns=abc"); r.code != 2 {
		t.Fatalf("a bad pool_max_conns: %+v (want exit 2, as send gives)", r)
	}
}
