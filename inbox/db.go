package inbox

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// DB is what the inbox needs from a database handle: pass the caller's
// pgx.Tx so the record commits or rolls back with the business writes.
// *pgxpool.Pool and *pgx.Conn satisfy it too.
type DB interface {
	// Exec runs a statement that returns no rows.
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	// Query runs a statement that returns rows.
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	// QueryRow runs a statement that returns at most one row.
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// SendBatch sends several statements in one round trip.
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// ReceiverDB is what a Receiver needs from its database: Begin for each
// receipt's transaction, and Exec for the failure log, written after that
// transaction rolled back. *pgxpool.Pool satisfies it; pass a pool, since
// the receiver serves requests concurrently and a *pgx.Conn cannot. With a
// *pgxpool.Pool itself, each receipt runs on a connection it holds until
// its failure row, if any, is written; a type of yours that wraps one is
// used through its own Begin and Exec.
type ReceiverDB interface {
	// Begin starts a receipt's transaction.
	Begin(ctx context.Context) (pgx.Tx, error)
	// Exec writes the failure log, outside any receipt's transaction.
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// JobInserter inserts the River job of an async event in the receipt's
// transaction (ReceiverConfig.River). *river.Client[pgx.Tx] satisfies it.
type JobInserter interface {
	// InsertTx inserts a job in tx: it commits or rolls back with the
	// receipt.
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}
