package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"log/slog"

	"github.com/pressly/goose/v3/lock"
)

// schemaLocker wraps goose's PostgreSQL session locker. Once the lock is held
// it points the session's search_path at the schema, so that the SQL
// migrations, which name no schema, land there.
type schemaLocker struct {
	inner  lock.SessionLocker
	schema string
	id     int64        // the advisory lock's key (lockID)
	log    *slog.Logger // never nil
}

// lockHolderSQL finds the session holding the bigint advisory lock $1 in
// this database (PostgreSQL shows its high and low halves).
const lockHolderSQL = `
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid
LIMIT 1`

var _ lock.SessionLocker = (*schemaLocker)(nil)

func (l *schemaLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	// goose waits for the lock without a word: say who holds it.
	var holder int
	if conn.QueryRowContext(ctx, lockHolderSQL, l.id).Scan(&holder) == nil {
		l.log.Info("waiting for another migration run of this schema to end", "schema", l.schema, "backend_pid", holder)
	}
	if err := l.inner.SessionLock(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "SELECT set_config('search_path', $1, false)", l.schema); err != nil {
		return errors.Join(fmt.Errorf("prepare schema %s: %w", l.schema, err), l.inner.SessionUnlock(context.WithoutCancel(ctx), conn))
	}
	return nil
}

func (l *schemaLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "RESET search_path")
	return errors.Join(err, l.inner.SessionUnlock(ctx, conn))
}

// ensureSchema creates the schema before goose looks for its version table
// there (goose checks for pending migrations without taking its lock). Two
// concurrent CREATE SCHEMA IF NOT EXISTS can still collide on pg_namespace,
// so they are serialised with an advisory lock of their own.
// createdMark is the comment on a schema that outboxd migrate created.
const createdMark = "created by outboxd migrate"

func ensureSchema(ctx context.Context, db *sql.DB, schema string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	id := lockID(schema) + 1
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		return err
	}
	// The schema name was validated as a plain identifier in New. A schema
	// that we create is marked, so that down to 0 drops only ours, never
	// public or one a DBA prepared with its grants.
	var exists bool
	err = conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema+"; COMMENT ON SCHEMA "+schema+" IS '"+createdMark+"'")
	}
	_, unlockErr := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", id)
	return errors.Join(err, unlockErr)
}
