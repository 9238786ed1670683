package migrations_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/lib/pq"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// The ALTER of migration 16 gives up after its tries, naming the cause,
// and leaves the table as it was; with pgx's database/sql driver and with
// lib/pq's (the Migrator takes either: each has its own error type).
func TestAlterBrieflyGivesUp(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{"pgx", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			db, err := sql.Open(driver, pgtest.EmptyURL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			alterBrieflyGivesUp(t, db)
		})
	}
}

func alterBrieflyGivesUp(t *testing.T, db *sql.DB) {
	ctx := context.Background()
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
