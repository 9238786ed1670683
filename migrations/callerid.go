package migrations

import (
	"context"
	"database/sql"

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

func callerIDMigration(o online) *goose.Migration {
	table := o.schema + ".outbox_messages"
	return goose.NewGoMigration(callerIDVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			// A default is a catalog change: no rewrite of the table.
			if err := o.alterBriefly(ctx, db, table, `ALTER TABLE `+table+` ADD COLUMN IF NOT EXISTS caller_id boolean NOT NULL DEFAULT false`, alterTries); err != nil {
				return err
			}
			// No row is marked before the index is valid (each insert
			// looks: outbox/sql.go, callerVal): the rows it is built over
			// are those of migration 15's index, so its build cannot meet a
			// duplicate that one did not.
			return o.swapUnique(ctx, db, callerKeyIndex, callerKeyDef, givenKeyIndex)
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			// The column's drop drops its index in the same instant: a
			// down that gives up before it leaves version 16 whole (one
			// index more), never 16 without its index.
			if err := o.swapUnique(ctx, db, givenKeyIndex, givenKeyDef, ""); err != nil {
				return err
			}
			return o.alterBriefly(ctx, db, table, `ALTER TABLE `+table+` DROP COLUMN IF EXISTS caller_id`, alterTries)
		}, Mode: goose.TransactionDisabled},
	)
}
