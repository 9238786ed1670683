package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pressly/goose/v3"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// scrubVersion is the goose version of the header scrub.
const scrubVersion = 9

// scrubBatchSQL removes the secrets that rows stored before migration 7
// kept among their headers (signatures, tokens, keys: a captured request
// anyone who can read the table could replay), for one batch of rows after
// the key ($1, $2) in primary-key order, and returns the batch's last key.
// The name rule is the one inbox applies before storing (which keeps
// Twilio's idempotency token: an event id, not a credential).
const scrubBatchSQL = `
WITH batch AS (
    SELECT source, event_id FROM {{schema}}.inbox_events
    WHERE (source, event_id) > ($1, $2)
    ORDER BY source, event_id
    LIMIT $3
), scrubbed AS (
    UPDATE {{schema}}.inbox_events e
    SET headers = coalesce((
            SELECT jsonb_object_agg(k, v) FROM jsonb_each(e.headers) AS h(k, v)
            WHERE lower(k) !~ '(token|secret|sig|key|auth|cookie|password|hmac|hash|credential|session)'
               OR lower(k) = 'i-twilio-idempotency-token'), '{}')
    FROM batch b
    WHERE e.source = b.source AND e.event_id = b.event_id
      AND EXISTS (SELECT 1 FROM jsonb_object_keys(e.headers) AS h(k)
                  WHERE lower(k) ~ '(token|secret|sig|key|auth|cookie|password|hmac|hash|credential|session)'
                    AND lower(k) <> 'i-twilio-idempotency-token')
)
SELECT source, event_id FROM batch ORDER BY source DESC, event_id DESC LIMIT 1`

// scrubBatch is how many rows each of the scrub's transactions rewrites
// (docs/receiving.md: 1,000).
const scrubBatch = 1000

// scrubMigration rewrites old rows' headers in batches of scrubBatch, each
// its own transaction (goose runs it outside one): the table is never
// locked as a whole and never rewritten at once, whatever its size. It can
// be interrupted and run again. Down does nothing: what was removed is
// gone.
func scrubMigration(schema string) *goose.Migration {
	q := dbschema.Render(scrubBatchSQL, schema)
	return goose.NewGoMigration(scrubVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			source, eventID := "", ""
			for {
				err := db.QueryRowContext(ctx, q, source, eventID, scrubBatch).Scan(&source, &eventID)
				if errors.Is(err, sql.ErrNoRows) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("scrub stored headers: %w", err)
				}
			}
		}},
		&goose.GoFunc{Mode: goose.TransactionDisabled},
	)
}

// GoMigrations returns the migrations of schema that are Go code, not SQL
// files: River's schema (versions 2 and 3), the async inbox indexes (8),
// the header scrub (9), the console's table and index (11), the enqueue
// indexes (12), the retry heads (14), the given-key index (15) and
// the caller-id column (16). goose needs them beside FS. They are goose's own
// type because they are for users who run goose themselves
// (goose.WithGoMigrations); Migrator users never see them.
func GoMigrations(schema string) []*goose.Migration {
	return goMigrations(schema, nil)
}

// goMigrations is GoMigrations with a logger for what the index builds
// and ALTERs of migrations 8, 11, 12, 14, 15 and 16 wait for (nil: none).
func goMigrations(schema string, log *slog.Logger) []*goose.Migration {
	o := newOnline(schema, log)
	return append(RiverMigrations(schema), inboxIndexesMigration(o), scrubMigration(schema), consoleMigration(o),
		enqueueIndexesMigration(o), retryHeadsMigration(o),
		givenKeyMigration(o), callerIDMigration(o))
}

// GoMigrationName names a Go migration for people, "" for other versions.
func GoMigrationName(version int64) string {
	switch {
	case version == scrubVersion:
		return "scrub secrets from stored headers (Go migration)"
	case version == inboxIndexesVersion:
		return "inbox indexes for async events (Go migration)"
	case version == consoleVersion:
		return "console audit table and attempts index (Go migration)"
	case version == enqueueIndexesVersion:
		return "outbox enqueue indexes (Go migration)"
	case version == retryHeadsVersion:
		return "outbox retry heads (Go migration)"
	case version == givenKeyVersion:
		return "unique index of given idempotency keys only (Go migration)"
	case version == callerIDVersion:
		return "caller-given ids in the unique index of keys (Go migration)"
	case version == riverSteps[0].gooseVersion || version == riverSteps[len(riverSteps)-1].gooseVersion:
		return "River schema (Go migration)"
	}
	return ""
}
