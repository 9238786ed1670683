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
	s, err := o.pin(ctx, db)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.ensure("UNIQUE INDEX", name, def); err != nil || old == "" {
		return err
	}
	return s.drop(old)
}

// ensureIndex makes sure the (not unique) index name (def) exists and is
// valid, as swapUnique.
func (o online) ensureIndex(ctx context.Context, db *sql.DB, name, def string) error {
	s, err := o.pin(ctx, db)
	if err != nil {
		return err
	}
	defer s.close()
	return s.ensure("INDEX", name, def)
}

// dropIndex drops the index name CONCURRENTLY, if it exists.
func (o online) dropIndex(ctx context.Context, db *sql.DB, name string) error {
	s, err := o.pin(ctx, db)
	if err != nil {
		return err
	}
	defer s.close()
	return s.drop(name)
}

// ddlSession is one connection that runs index builds and drops, checking
// its client every second (checkClient) and reporting what it waits for.
type ddlSession struct {
	o    online
	ctx  context.Context
	db   *sql.DB
	conn *sql.Conn
	pid  int
	// checks says whether the server took checkClient (14 and later).
	checks bool
}

func (o online) pin(ctx context.Context, db *sql.DB) (*ddlSession, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	s := &ddlSession{o: o, ctx: ctx, db: db, conn: conn}
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&s.pid); err != nil {
		_ = conn.Close()
		return nil, err
	}
	_, err = conn.ExecContext(ctx, checkClient)
	s.checks = err == nil
	return s, nil
}

func (s *ddlSession) close() {
	if s.checks {
		// After a cancelled statement the driver has discarded the
		// connection and this fails at once; the bound is for a server
		// that no longer answers.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
		_, _ = s.conn.ExecContext(ctx, checkClientReset)
		cancel()
	}
	_ = s.conn.Close()
}

func (s *ddlSession) run(what, stmt string) error {
	stop := s.o.reportWaits(s.ctx, s.db, s.pid, what)
	defer stop()
	_, err := s.conn.ExecContext(s.ctx, stmt)
	return err
}

// ensure builds the index name (kind "INDEX" or "UNIQUE INDEX", def)
// unless a valid one exists; an invalid one is dropped first.
func (s *ddlSession) ensure(kind, name, def string) error {
	qualified := s.o.schema + "." + name
	var valid sql.NullBool
	err := s.conn.QueryRowContext(s.ctx, `SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1))`, qualified).Scan(&valid)
	if err != nil {
		return fmt.Errorf("index %s: %w", name, err)
	}
	if valid.Valid && valid.Bool {
		return nil
	}
	if valid.Valid {
		if err := s.run("drop invalid index "+name, `DROP INDEX CONCURRENTLY IF EXISTS `+qualified); err != nil {
			return fmt.Errorf("drop invalid index %s: %w", name, err)
		}
	}
	s.o.log.Info("building index concurrently: it waits for the transactions open on the table, and then for every older snapshot", "index", qualified)
	if err := s.run("build index "+name, `CREATE `+kind+` CONCURRENTLY `+name+` `+dbschema.Render(def, s.o.schema)); err != nil {
		return fmt.Errorf("build index %s (cut short, it may be left invalid: run the same migration again, which builds it anew): %w", name, err)
	}
	return nil
}

func (s *ddlSession) drop(name string) error {
	if err := s.run("drop index "+name, `DROP INDEX CONCURRENTLY IF EXISTS `+s.o.schema+"."+name); err != nil {
		return fmt.Errorf("drop index %s: %w", name, err)
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
