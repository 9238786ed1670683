package migrations

import (
	"context"
	"database/sql"
)

// AlterBriefly is alterBriefly without a logger, for the tests of package
// migrations_test (which can import pgtest; this package's own tests
// cannot).
func AlterBriefly(ctx context.Context, db *sql.DB, table, stmt string, tries int) error {
	return newOnline("outboxd", nil).alterBriefly(ctx, db, table, stmt, tries)
}

// LockID is the advisory lock a schema's migration runs hold.
func LockID(schema string) int64 { return lockID(schema) }
