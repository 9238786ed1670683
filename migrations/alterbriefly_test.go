package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// The ALTER of migration 16 gives up after its tries, naming the cause, and leaves the
// table as it was.
func TestAlterBrieflyGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))
	if _, err := db.Exec(`CREATE TABLE held (a int)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec(`INSERT INTO held VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	err = migrations.AlterBriefly(ctx, db, "held", `ALTER TABLE held ADD COLUMN b int`, 3)
	if err == nil || !strings.Contains(err.Error(), "no moment without a transaction on the table in 3 tries of 200ms") {
		t.Fatalf("alter behind an open transaction: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var cols int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'held'`).Scan(&cols); err != nil || cols != 1 {
		t.Fatalf("%d columns (%v), want 1", cols, err)
	}
	if err := migrations.AlterBriefly(ctx, db, "held", `ALTER TABLE held ADD COLUMN b int`, 3); err != nil {
		t.Fatal(err)
	}
}
