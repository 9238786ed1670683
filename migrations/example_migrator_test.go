package migrations_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// An application migrates outboxd's schema at start, from its own code
// (the daemon's `outboxd migrate up` does the same). Up is safe to run from
// several processes at once: they take turns on a lock, and a schema that
// is up to date is left alone.
func ExampleMigrator_Up() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // any PostgreSQL database
	defer done()
	db := stdlib.OpenDBFromPool(pool) // or sql.Open("pgx", url)
	defer db.Close()

	m, err := migrations.New(db, &migrations.Config{Schema: "billing_outbox"})
	if err != nil {
		panic(err)
	}
	for range 2 { // the second start finds nothing to do
		applied, err := m.Up(ctx)
		if err != nil {
			panic(err)
		}
		version, err := m.Version(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("applied %d, %s at version %d\n", len(applied), m.Schema(), version)
	}

	// Output:
	// applied 16, billing_outbox at version 16
	// applied 0, billing_outbox at version 16
}
