package migrations

import (
	"context"
	"database/sql"

	"github.com/pressly/goose/v3"
)

// givenKeyVersion is the goose version of the given-key index.
const givenKeyVersion = 15

// Migration 15: a message whose idempotency key is its own id's text (one
// enqueued with no id, no key and no cause: Enqueue makes a UUIDv7 and keys
// it by it, or one with the caller's id and no key) leaves the unique
// idempotency-key index: its primary key makes that key unique already, and
// the entry cost every such enqueue and every delivery of it one index
// entry (about 6 us of the server's 20 and 115 B of WAL per delivery, make
// bench-record). Enqueue looks a key up in both forms (outbox/sql.go,
// dupCTE). Up builds the index of the other keys, then drops the full one;
// down the reverse.
//
// A Go migration, not SQL, because a run cut short must be safe to run
// again: an index already built and valid is kept (dropping it first, as
// the SQL forms of migrations 12 and 14 did with theirs, would leave the
// keys without a unique index while it builds again, if the other index
// was already gone), and only an invalid one (a build cut short, or one that met a
// duplicate) is dropped and built again. Every step is CONCURRENTLY, outside
// a transaction, so enqueues are never blocked.
const (
	fullKeyIndex  = "outbox_messages_idempotency_key_idx"
	givenKeyIndex = "outbox_messages_given_key_idx"
	fullKeyDef    = `ON {{schema}}.outbox_messages (destination, idempotency_key)`
	givenKeyDef   = `ON {{schema}}.outbox_messages (destination, idempotency_key) WHERE idempotency_key <> id::text`
)

func givenKeyMigration(o online) *goose.Migration {
	return goose.NewGoMigration(givenKeyVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.swapUnique(ctx, db, givenKeyIndex, givenKeyDef, fullKeyIndex)
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.swapUnique(ctx, db, fullKeyIndex, fullKeyDef, givenKeyIndex)
		}, Mode: goose.TransactionDisabled},
	)
}
