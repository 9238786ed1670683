package migrations

import (
	"context"
	"database/sql"

	"github.com/pressly/goose/v3"
)

// Migrations 12 and 14 (and 8 and 11, builds.go) change indexes CONCURRENTLY, so
// as not to block enqueues on a large table. They were SQL files; as Go
// migrations their builds check their client every second (a killed
// migrate leaves no build running on the server), say what they wait for,
// and a re-run keeps an index already built. A database that applied the
// SQL files is at the same schema.
const (
	enqueueIndexesVersion = 12
	retryHeadsVersion     = 14
)

// Migration 12: an enqueue writes one index entry less (issue 9's budget:
// at most 3 per message without a cause). pending_created_idx (created_at
// of every pending message) served only outboxd serve's /metrics
// collector, which reads the dispatcher's lane indexes instead, up to a
// cap per destination. caused_by_idx stays: the console's event page finds
// the messages an event caused through it.
const (
	pendingCreatedIndex = "outbox_messages_pending_created_idx"
	pendingCreatedDef   = `ON {{schema}}.outbox_messages (created_at) WHERE status = 'pending'`
)

func enqueueIndexesMigration(o online) *goose.Migration {
	return goose.NewGoMigration(enqueueIndexesVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.dropIndex(ctx, db, pendingCreatedIndex)
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.ensureIndex(ctx, db, pendingCreatedIndex, pendingCreatedDef)
		}, Mode: goose.TransactionDisabled},
	)
}

// Migration 14: the heads of ordering keys that failed an attempt since
// they were queued (or requeued), by due time: a lane's sweep finds its due
// retries through this range, at the cost of what is due, instead of
// walking the head of every key with pending messages (worker/walk.go: a
// destination that has been failing for a while has a backlog behind every
// key's head, and walking 100,000 keys cost its dispatcher most of a
// core). Only a failed attempt enters it (attempts > attempts_base: a
// requeue sets attempts_base = attempts, an abandoned attempt raises
// both); an enqueue and a first-try delivery add no entry.
const (
	retryHeadsIndex = "outbox_messages_retry_heads_idx"
	retryHeadsDef   = `ON {{schema}}.outbox_messages (destination, lane, next_attempt_at)
    WHERE status = 'pending' AND ordering_key IS NOT NULL AND attempts > attempts_base`
)

func retryHeadsMigration(o online) *goose.Migration {
	return goose.NewGoMigration(retryHeadsVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.ensureIndex(ctx, db, retryHeadsIndex, retryHeadsDef)
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.dropIndex(ctx, db, retryHeadsIndex)
		}, Mode: goose.TransactionDisabled},
	)
}
