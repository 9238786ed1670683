package migrations_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// upTo migrates a new empty database up to version, and returns its URL.
func upTo(t *testing.T, version int64) (string, *sql.DB, *migrations.Migrator) {
	t.Helper()
	url := pgtest.EmptyURL(t)
	db := pgtest.SQLDB(t, url)
	m, err := migrations.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return url, db, m
}

// upFresh migrates a new empty database all the way up.
func upFresh(t *testing.T) (*sql.DB, *migrations.Migrator) {
	t.Helper()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))
	m, err := migrations.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, m
}

// objectsIn counts tables, sequences, views, functions and types in schema.
func objectsIn(t *testing.T, db *sql.DB, schema string) int {
	t.Helper()
	var n int
	err := db.QueryRow(`
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1)
     + (SELECT count(*) FROM pg_type y JOIN pg_namespace n ON n.oid = y.typnamespace
        WHERE n.nspname = $1 AND y.typtype IN ('e', 'd'))`, schema).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func schemaExists(t *testing.T, db *sql.DB, schema string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func tableExists(t *testing.T, db *sql.DB, qualified string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, qualified).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestUpOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))

	m, err := migrations.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 16 {
		t.Fatalf("applied %d migrations, want 16", len(res))
	}
	// Versions run 1..N without a gap: a gap hides a migration lost in a
	// merge, and goose would apply a late-numbered one out of order.
	for i, r := range res {
		if r.Version != int64(i+1) {
			t.Fatalf("migration %d of %d has version %d, want %d: versions must run 1..N with no gap", i+1, len(res), r.Version, i+1)
		}
	}
	for _, tbl := range []string{"outboxd.inbox_events", "outboxd.outbox_messages", "outboxd.outbox_keys",
		"outboxd.river_job", "outboxd.river_migration", "outboxd.outboxd_migrations"} {
		if !tableExists(t, db, tbl) {
			t.Errorf("%s missing after up", tbl)
		}
	}
	var riverVersion int
	if err := db.QueryRow(`SELECT max(version) FROM outboxd.river_migration`).Scan(&riverVersion); err != nil {
		t.Fatal(err)
	}
	if riverVersion != migrations.RiverVersion {
		t.Errorf("river at version %d, want %d", riverVersion, migrations.RiverVersion)
	}
	v, err := m.Version(ctx)
	if err != nil || v != 16 {
		t.Fatalf("version = %d, %v; want 16", v, err)
	}
	// A second run applies nothing.
	res, err = m.Up(ctx)
	if err != nil || len(res) != 0 {
		t.Fatalf("second up applied %d, err %v", len(res), err)
	}
	// Nothing outside our schema.
	if tableExists(t, db, "public.goose_db_version") || tableExists(t, db, "public.river_job") {
		t.Error("migrations created objects in public")
	}
}

func TestUpBesideExistingGooseAndTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))

	// The application's own schema, managed by its own goose table.
	for _, q := range []string{
		`CREATE TABLE public.customers (id serial PRIMARY KEY, name text)`,
		`INSERT INTO public.customers (name) VALUES ('ada'), ('grace')`,
		`CREATE TABLE public.goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp DEFAULT now())`,
		`INSERT INTO public.goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true), (3, true)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() (customers string, versions string) {
		t.Helper()
		if err := db.QueryRow(`SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM public.customers`).Scan(&customers); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT string_agg(version_id || ':' || is_applied, ',' ORDER BY id) FROM public.goose_db_version`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		return
	}
	c0, v0 := snapshot()

	if err := migrations.Up(ctx, db, "outboxd"); err != nil {
		t.Fatal(err)
	}
	c1, v1 := snapshot()
	if c0 != c1 || v0 != v1 {
		t.Fatalf("existing tables changed: customers %q -> %q, goose %q -> %q", c0, c1, v0, v1)
	}
	if !tableExists(t, db, "outboxd.inbox_events") {
		t.Fatal("our tables missing")
	}

	m, err := migrations.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c2, v2 := snapshot()
	if c0 != c2 || v0 != v2 {
		t.Fatalf("down changed existing tables: customers %q -> %q, goose %q -> %q", c0, c2, v0, v2)
	}
}

func TestDownToZeroLeavesNothingThenUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))
	m, err := migrations.New(db, &migrations.Config{Schema: "ob_custom"})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if _, err := m.Up(ctx); err != nil {
			t.Fatalf("round %d up: %v", round, err)
		}
		if !tableExists(t, db, "ob_custom.outbox_messages") || !tableExists(t, db, "ob_custom.river_job") {
			t.Fatalf("round %d: tables missing in custom schema", round)
		}
		if _, err := m.DownTo(ctx, 0); err != nil {
			t.Fatalf("round %d down: %v", round, err)
		}
		if n := objectsIn(t, db, "ob_custom"); n != 0 {
			t.Fatalf("round %d: %d objects left in schema after down to 0", round, n)
		}
		if schemaExists(t, db, "ob_custom") {
			t.Fatalf("round %d: schema left behind", round)
		}
	}
}

func TestDownOneStepAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, m := upFresh(t)
	if !indexValid(t, db, "outboxd.outbox_messages_retry_heads_idx") {
		t.Fatal("up should build outbox_messages_retry_heads_idx")
	}
	if _, err := m.Down(ctx); err != nil { // caller ids in the unique index of keys
		t.Fatal(err)
	}
	var callerID int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_schema = 'outboxd'
		AND table_name = 'outbox_messages' AND column_name = 'caller_id'`).Scan(&callerID); err != nil || callerID != 0 ||
		indexValid(t, db, "outboxd.outbox_messages_caller_key_idx") || !indexValid(t, db, "outboxd.outbox_messages_given_key_idx") {
		t.Fatalf("one step down should put back the index of given keys and drop caller_id (%d left, %v)", callerID, err)
	}
	if _, err := m.Down(ctx); err != nil { // the unique index of given keys only
		t.Fatal(err)
	}
	if indexValid(t, db, "outboxd.outbox_messages_given_key_idx") || !indexValid(t, db, "outboxd.outbox_messages_idempotency_key_idx") {
		t.Fatal("one step down should put back the unique index of every idempotency key")
	}
	if _, err := m.Down(ctx); err != nil { // the retry heads' index
		t.Fatal(err)
	}
	if indexValid(t, db, "outboxd.outbox_messages_retry_heads_idx") {
		t.Fatal("one step down should drop outbox_messages_retry_heads_idx")
	}
	if _, err := m.Down(ctx); err != nil { // first-try successes on the message row
		t.Fatal(err)
	}
	if tableExists(t, db, "outboxd.outbox_attempt_log") {
		t.Fatal("one step down should drop outbox_attempt_log")
	}
	if _, err := m.Down(ctx); err != nil { // the indexes an enqueue no longer writes
		t.Fatal(err)
	}
	if !indexValid(t, db, "outboxd.outbox_messages_pending_created_idx") {
		t.Fatal("one step down should restore outbox_messages_pending_created_idx")
	}
	consoleIndexes := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_indexes WHERE schemaname = 'outboxd' AND indexname IN
			('outbox_attempts_attempted_at_idx')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if !tableExists(t, db, "outboxd.console_audit") || consoleIndexes() != 1 {
		t.Fatalf("migration 11: console_audit %v, %d of its 1 index", tableExists(t, db, "outboxd.console_audit"), consoleIndexes())
	}
	if _, err := m.Down(ctx); err != nil { // the console's audit table and attempts index
		t.Fatal(err)
	}
	if tableExists(t, db, "outboxd.console_audit") {
		t.Fatal("one step down should drop console_audit")
	}
	if n := consoleIndexes(); n != 0 {
		t.Fatalf("one step down should drop the console's indexes: %d left", n)
	}
	if _, err := m.Down(ctx); err != nil { // the enqueue trigger
		t.Fatal(err)
	}
	var onInsert bool
	if err := db.QueryRow(`SELECT tgtype & 4 <> 0 FROM pg_trigger WHERE tgname = 'outbox_messages_notify'`).Scan(&onInsert); err != nil || !onInsert {
		t.Fatalf("one step down should restore the NOTIFY on insert: %v %v", onInsert, err)
	}
	for i := 0; i < 2; i++ { // the scrub (nothing to undo), then the inbox indexes
		if _, err := m.Down(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var idx int
	if err := db.QueryRow(`SELECT count(*) FROM pg_indexes WHERE schemaname = 'outboxd' AND indexname IN
		('inbox_events_received_idx', 'inbox_events_purge_idx', 'inbox_events_expires_at_idx')`).Scan(&idx); err != nil || idx != 1 {
		t.Fatalf("two steps down should leave only the old expiry index: %d of the three, %v", idx, err)
	}
	if _, err := m.Down(ctx); err != nil {
		t.Fatal(err)
	}
	var cols int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_schema = 'outboxd'
		AND table_name = 'inbox_events' AND column_name IN ('signed_at', 'original_id')`).Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("one step down should remove the inbox identity columns: %d left, %v", cols, err)
	}
	if _, err := m.Down(ctx); err != nil {
		t.Fatal(err)
	}
	// The next step down restores migration 4's lanes: one lease per lane.
	var lanes int
	if err := db.QueryRow(`SELECT count(*) FROM outboxd.outbox_lanes`).Scan(&lanes); err != nil || lanes != 32 {
		t.Fatalf("after two steps down: %d lanes, %v", lanes, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := m.Down(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if tableExists(t, db, "outboxd.outbox_lanes") || !tableExists(t, db, "outboxd.river_job") {
		t.Fatal("six steps down should remove the inbox changes, the leases, the failure log and the dispatcher tables only")
	}
	for i := 0; i < 2; i++ {
		if _, err := m.Down(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if tableExists(t, db, "outboxd.river_job") || !tableExists(t, db, "outboxd.inbox_events") {
		t.Fatal("two more steps down should remove River's tables only")
	}
	if _, err := m.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if schemaExists(t, db, "outboxd") {
		t.Fatal("schema left after the last step down")
	}
	// Down with nothing applied is harmless.
	if _, err := m.Down(ctx); err != nil {
		t.Fatalf("down on empty: %v", err)
	}
}

func TestSchemaKeptWhenItHoldsUserObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, m := upFresh(t)
	if _, err := db.Exec(`CREATE TABLE outboxd.mine (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if !tableExists(t, db, "outboxd.mine") {
		t.Fatal("user's table in our schema was dropped")
	}
	if tableExists(t, db, "outboxd.outboxd_migrations") {
		t.Fatal("version table left behind")
	}
}

func TestInvalidSchemaName(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"Outboxd", "1abc", "a-b", "a;drop table x", `a"b`} {
		if _, err := migrations.New(&sql.DB{}, &migrations.Config{Schema: s}); err == nil {
			t.Errorf("schema %q accepted", s)
		}
	}
}

// Up's errors name Up, the function the user called, not New.
func TestUpErrorsNameUp(t *testing.T) {
	t.Parallel()
	var typed *sql.DB
	for _, db := range []*sql.DB{nil, typed} {
		if err := migrations.Up(context.Background(), db, ""); err == nil || err.Error() != "migrations: Up needs a database handle (a *sql.DB, not nil)" {
			t.Errorf("Up(nil db): %v", err)
		}
	}
	if err := migrations.Up(context.Background(), &sql.DB{}, "a-b"); err == nil || !strings.HasPrefix(err.Error(), "migrations: Up: ") {
		t.Errorf("Up(bad schema): %v, want an error naming Up", err)
	}
}
