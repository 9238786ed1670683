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
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// ReceiverDB is what a Receiver needs from its database: Begin for each
// receipt's transaction, and Exec for the failure log, written after that
// transaction rolled back. *pgxpool.Pool satisfies it; pass a pool, since
// the receiver serves requests concurrently and a *pgx.Conn cannot.
type ReceiverDB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// JobInserter inserts the River job of an async event in the receipt's
// transaction (ReceiverConfig.River). *river.Client[pgx.Tx] satisfies it.
type JobInserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}
