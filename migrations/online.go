package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// online makes the schema changes that must not stop enqueues (unique
// indexes built and dropped CONCURRENTLY, brief ALTERs), and says on log
// what each one waits for: both can wait for other sessions' transactions
// for as long as those stay open.
type online struct {
	schema string
	log    *slog.Logger // never nil
}

func newOnline(schema string, log *slog.Logger) online {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return online{schema: schema, log: log}
}

// waitNotice is how often a wait is reported.
const waitNotice = 10 * time.Second

// checkClient makes a backend that runs a long statement notice within a
// second that its client is gone (an interrupted migrate): without it a
// CREATE INDEX CONCURRENTLY runs on to its end, and may leave the index it
// was to replace beside a valid one. PostgreSQL 14 and later; older
// servers refuse the setting, which is then left alone.
const (
	checkClient      = `SET client_connection_check_interval = '1s'`
	checkClientReset = `RESET client_connection_check_interval`
)

// swapUnique makes sure the unique index name (def) exists and is valid,
// then drops old (none: ""). A valid index is kept (a re-run of a
// migration cut short), an invalid one dropped and built again.
func (o online) swapUnique(ctx context.Context, db *sql.DB, name, def, old string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, checkClient); err == nil {
		defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), checkClientReset) }()
	}
	var pid int
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		return err
	}
	qualified := o.schema + "." + name
	var valid sql.NullBool
	err = conn.QueryRowContext(ctx, `SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1))`, qualified).Scan(&valid)
	if err != nil {
		return fmt.Errorf("index %s: %w", name, err)
	}
	run := func(what, stmt string) error {
		stop := o.reportWaits(ctx, db, pid, what)
		defer stop()
		_, err := conn.ExecContext(ctx, stmt)
		return err
	}
	if !valid.Valid || !valid.Bool {
		if valid.Valid {
			if err := run("drop invalid index "+name, `DROP INDEX CONCURRENTLY IF EXISTS `+qualified); err != nil {
				return fmt.Errorf("drop invalid index %s: %w", name, err)
			}
		}
		o.log.Info("building index concurrently: it waits for the transactions open on the table, and then for every older snapshot", "index", qualified)
		if err := run("build index "+name, `CREATE UNIQUE INDEX CONCURRENTLY `+name+` `+dbschema.Render(def, o.schema)); err != nil {
			return fmt.Errorf("build index %s (cut short, it may be left invalid: run the same migration again, which builds it anew): %w", name, err)
		}
	}
	if old == "" {
		return nil
	}
	if err := run("drop index "+old, `DROP INDEX CONCURRENTLY IF EXISTS `+o.schema+"."+old); err != nil {
		return fmt.Errorf("drop index %s: %w", old, err)
	}
	return nil
}

// blockersSQL names the sessions that the backend $1 waits for: no query
// text (it may hold secrets), only what an operator needs to find them.
const blockersSQL = `
SELECT ` + sessionList + `
FROM (SELECT pid, state, xact_start, row_number() OVER (ORDER BY xact_start, pid) AS n
      FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids($1))) a`

// sessionList lists sessions a (pid, state, xact_start), oldest
// transaction first, five at most and how many more.
const sessionList = `coalesce(string_agg(format('pid %s (%s, transaction open %s)', pid, coalesce(state, 'unknown'),
                    coalesce(date_trunc('second', now() - xact_start)::text, 'unknown')), ', ' ORDER BY xact_start, pid)
                    FILTER (WHERE n <= 5), '') ||
       CASE WHEN count(*) > 5 THEN format(' and %s more', count(*) - 5) ELSE '' END`

// reportWaits logs every waitNotice, until stop, the sessions that the
// backend pid waits for (nothing while it waits for none).
func (o online) reportWaits(ctx context.Context, db *sql.DB, pid int, what string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(waitNotice)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var who string
			if err := db.QueryRowContext(ctx, blockersSQL, pid).Scan(&who); err == nil && who != "" {
				o.log.Info("waiting for other sessions' transactions to end", "step", what, "sessions", who)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// alterLockWait bounds each try of alterBriefly to take its lock: while an
// ALTER TABLE waits for the table's lock, every statement on the table
// queues behind it, enqueues included.
const (
	alterLockWait = 200 * time.Millisecond
	alterTries    = 50
)

// holdersSQL names the sessions holding a lock on the table $1.
// (In this database: relation OIDs repeat across databases, in clones of
// one template above all.)
const holdersSQL = `
SELECT ` + sessionList + `
FROM (SELECT pid, state, xact_start, row_number() OVER (ORDER BY xact_start, pid) AS n
      FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND pid IN (SELECT pid FROM pg_locks WHERE relation = to_regclass($1) AND granted
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))) a`

// alterBriefly runs an ALTER TABLE of table that holds its lock for an
// instant, giving up the wait for the lock after alterLockWait and trying
// again, up to tries times (a transaction left open on the table would
// otherwise stop every enqueue for as long as it stays open).
func (o online) alterBriefly(ctx context.Context, db *sql.DB, table, stmt string, tries int) error {
	for try := 1; ; try++ {
		err := alterOnce(ctx, db, stmt)
		// Any driver's error with a SQLSTATE (pgx's, lib/pq's).
		var coded interface{ SQLState() string }
		if err == nil || !errors.As(err, &coded) || coded.SQLState() != "55P03" {
			return err
		}
		if try == tries {
			return fmt.Errorf("%s: no moment without a transaction on the table in %d tries of %s (a long transaction holds it: end it and run again): %w",
				stmt, tries, alterLockWait, err)
		}
		if try%10 == 1 {
			var who string
			_ = db.QueryRowContext(ctx, holdersSQL, table).Scan(&who)
			o.log.Info("waiting for a moment without a transaction on the table", "table", table, "try", try, "of", tries, "sessions", who)
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
