package migrations

import (
	"context"
	"database/sql"

	"github.com/pressly/goose/v3"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// Migrations 8 and 11 build indexes CONCURRENTLY on tables that receipts
// and deliveries write (inbox_events, outbox_attempts). They were SQL files,
// which waited for other sessions' transactions without a word (a trial's
// migrate up said nothing for 25 s behind an idle transaction, and serve
// --migrate's /readyz only "applying migrations"); as Go migrations, like
// 12 and 14, they say what they wait for, check their client every second,
// and a re-run keeps an index already built. A database that applied the
// SQL files is at the same schema.
const (
	inboxIndexesVersion = 8
	consoleVersion      = 11
)

// Migration 8: indexes for async events. inbox.Unprocessed alerts on the
// oldest event waiting for its handler; the purge finds expired rows
// through the second, never an event still waiting, so an old async
// backlog is never scanned again and again.
const (
	receivedIndex = "inbox_events_received_idx"
	receivedDef   = `ON {{schema}}.inbox_events (received_at) WHERE status = 'received'`
	purgeIndex    = "inbox_events_purge_idx"
	purgeDef      = `ON {{schema}}.inbox_events (expires_at) WHERE status <> 'received'`
	expiresIndex  = "inbox_events_expires_at_idx"
	expiresDef    = `ON {{schema}}.inbox_events (expires_at)`
)

func inboxIndexesMigration(o online) *goose.Migration {
	return goose.NewGoMigration(inboxIndexesVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.steps(ctx, db, ensure(receivedIndex, receivedDef), ensure(purgeIndex, purgeDef), drop(expiresIndex))
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return o.steps(ctx, db, ensure(expiresIndex, expiresDef), drop(purgeIndex), drop(receivedIndex))
		}, Mode: goose.TransactionDisabled},
	)
}

// Migration 11: the operator console's audit table (one row per action
// taken in the console or its API: who, when, what, and the messages it
// touched, capped by the console; count is exact), and an index of the
// attempts' time for its destinations page (the last hour's attempts;
// attempts are written after a delivery, never on the enqueue path).
const (
	consoleAuditSQL = `
CREATE TABLE IF NOT EXISTS {{schema}}.console_audit (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    role        text        NOT NULL,
    action      text        NOT NULL
        CHECK (action IN ('requeue', 'purge', 'pause', 'resume')),
    destination text,
    filter      jsonb       NOT NULL DEFAULT '{}',
    count       bigint      NOT NULL DEFAULT 0,
    message_ids uuid[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS console_audit_at_idx ON {{schema}}.console_audit (at);
CREATE INDEX IF NOT EXISTS console_audit_message_ids_idx ON {{schema}}.console_audit USING gin (message_ids)`
	attemptedAtIndex = "outbox_attempts_attempted_at_idx"
	attemptedAtDef   = `ON {{schema}}.outbox_attempts (attempted_at)`
)

func consoleMigration(o online) *goose.Migration {
	return goose.NewGoMigration(consoleVersion,
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			// One implicit transaction: a new table, nothing waits.
			if _, err := db.ExecContext(ctx, dbschema.Render(consoleAuditSQL, o.schema)); err != nil {
				return err
			}
			return o.ensureIndex(ctx, db, attemptedAtIndex, attemptedAtDef)
		}, Mode: goose.TransactionDisabled},
		&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			if err := o.dropIndex(ctx, db, attemptedAtIndex); err != nil {
				return err
			}
			_, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+o.schema+`.console_audit`)
			return err
		}, Mode: goose.TransactionDisabled},
	)
}

// step is one index build or drop of a ddlSession.
type step func(*ddlSession) error

func ensure(name, def string) step {
	return func(s *ddlSession) error { return s.ensure("INDEX", name, def) }
}
func drop(name string) step { return func(s *ddlSession) error { return s.drop(name) } }

// steps runs the steps in order on one pinned session.
func (o online) steps(ctx context.Context, db *sql.DB, steps ...step) error {
	s, err := o.pin(ctx, db)
	if err != nil {
		return err
	}
	defer s.close()
	for _, st := range steps {
		if err := st(s); err != nil {
			return err
		}
	}
	return nil
}
