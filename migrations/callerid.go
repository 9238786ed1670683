package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
)

// callerIDVersion is the goose version of the caller-id column.
const callerIDVersion = 16

// Migration 16 closes the race migration 15 opened: a message keyed by its
// own id, where the caller gave that id, had no entry in any key index, so
// a transaction giving the same value as another message's key, overlapping
// it, found nothing to conflict with and both were stored. caller_id marks
// the messages whose id the caller gave; the unique index of keys holds
// them too, so the two transactions conflict in it and the second stores
// nothing. A message whose id Enqueue made (the common case: no id, no
// key, no cause) still has no entry: nobody else can know its id before
// its transaction commits.
//
// The new index's predicate is implied by migration 15's
// (idempotency_key <> id::text), so statements written for 15, which
// producers of this version run until they see the column, still use it.
const (
	callerKeyIndex = "outbox_messages_caller_key_idx"
	callerKeyDef   = `ON {{schema}}.outbox_messages (destination, idempotency_key) WHERE idempotency_key <> id::text OR caller_id`
)

func callerIDMigration(schema string) *goose.Migration {
	return goose.NewGoMigration(callerIDVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			// A default is a catalog change: no rewrite of the table.
			if err := alterBriefly(ctx, db, `ALTER TABLE `+schema+`.outbox_messages ADD COLUMN IF NOT EXISTS caller_id boolean NOT NULL DEFAULT false`, alterTries); err != nil {
				return err
			}
			// Rows stored before it are all caller_id false: the new
			// index holds what migration 15's did, so its build cannot meet
			// a duplicate that one did not.
			return swapUnique(ctx, db, schema, callerKeyIndex, callerKeyDef, givenKeyIndex)
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			if err := swapUnique(ctx, db, schema, givenKeyIndex, givenKeyDef, callerKeyIndex); err != nil {
				return err
			}
			return alterBriefly(ctx, db, `ALTER TABLE `+schema+`.outbox_messages DROP COLUMN IF EXISTS caller_id`, alterTries)
		}, Mode: goose.TransactionDisabled},
	)
}

// alterLockWait bounds each try of alterBriefly to take its lock: while an
// ALTER TABLE waits for the table's lock, every statement on the table
// queues behind it, enqueues included.
const (
	alterLockWait = 200 * time.Millisecond
	alterTries    = 50
)

// alterBriefly runs an ALTER TABLE that holds its lock for an instant,
// giving up the wait for the lock after alterLockWait and trying again, up
// to tries times (a transaction left open on the table would otherwise
// stop every enqueue for as long as it stays open).
func alterBriefly(ctx context.Context, db *sql.DB, stmt string, tries int) error {
	for try := 1; ; try++ {
		err := alterOnce(ctx, db, stmt)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		if try == tries {
			return fmt.Errorf("%s: no moment without a transaction on the table in %d tries of %s (a long transaction holds it: end it and run again): %w",
				stmt, tries, alterLockWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(try) * 20 * time.Millisecond):
		}
	}
}

func alterOnce(ctx context.Context, db *sql.DB, stmt string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, alterLockWait.Milliseconds())); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return err
	}
	return tx.Commit()
}
