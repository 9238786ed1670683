package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// Up, Status and Down speak in the package's own Result and Status: a
// version, a name (the file, or what a Go migration does), a direction,
// whether and when applied.
func TestResultsAndStatusesAreOurs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))
	m, err := migrations.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	up, err := m.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(up) < 3 || up[0].Name != "00001_outboxd_core.sql" || up[0].Direction != migrations.DirectionUp ||
		up[1].Name != "River schema (Go migration)" || up[1].Version != 2 {
		t.Fatalf("up results start %+v %+v", up[0], up[1])
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(up) {
		t.Fatalf("%d statuses for %d migrations", len(st), len(up))
	}
	for i, s := range st {
		if !s.Applied || s.AppliedAt.IsZero() || s.Version != up[i].Version || s.Name != up[i].Name {
			t.Fatalf("status %d: %+v, want applied %d %s", i, s, up[i].Version, up[i].Name)
		}
	}
	down, err := m.Down(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := up[len(up)-1]
	if down.Direction != migrations.DirectionDown || down.Version != last.Version || down.Name != last.Name {
		t.Fatalf("down %+v, want %d %s reverted", down, last.Version, last.Name)
	}
	if st, err = m.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if s := st[len(st)-1]; s.Applied || !s.AppliedAt.IsZero() {
		t.Fatalf("reverted migration's status %+v", s)
	}
}

// A missing database handle is an error, not a panic on first use.
func TestNewNeedsADatabase(t *testing.T) {
	if _, err := migrations.New(nil, nil); err == nil || !strings.Contains(err.Error(), "database handle") {
		t.Fatalf("New(nil, nil): %v", err)
	}
}

// Status and Version only read: on a database outboxd never migrated they
// say that every migration is pending and that the version is 0, and
// leave it as it was, with neither the schema nor the version table
// (they created both, so a monitoring job's look at a new database made
// it look half-migrated to the next operator).
func TestStatusAndVersionWriteNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))
	m, err := migrations.New(db, &migrations.Config{Schema: "looked_at"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 || st[0].Version != 1 || st[0].Name != "00001_outboxd_core.sql" || st[1].Name != "River schema (Go migration)" {
		t.Fatalf("statuses %+v", st)
	}
	for _, s := range st {
		if s.Applied || !s.AppliedAt.IsZero() {
			t.Fatalf("status %+v on a database never migrated", s)
		}
	}
	if v, err := m.Version(ctx); err != nil || v != 0 {
		t.Fatalf("version %d, %v; want 0", v, err)
	}
	var schema bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'looked_at')`).Scan(&schema); err != nil || schema {
		t.Fatalf("schema looked_at exists: %v, %v; Status and Version must not create it", schema, err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err = m.Status(ctx); err != nil || !st[len(st)-1].Applied {
		t.Fatalf("after Up: %+v, %v", st[len(st)-1], err)
	}
}
