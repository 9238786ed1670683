package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/migrations"
)

// checkMode is serve's --check: "config" (bare --check) validates the
// configuration; "connect" also reaches the database and the destinations.
type checkMode string

func (c *checkMode) String() string   { return string(*c) }
func (c *checkMode) IsBoolFlag() bool { return true }

func (c *checkMode) Set(v string) error {
	switch v {
	case "true", "config":
		*c = "config"
	case "connect":
		*c = "connect"
	case "false":
		*c = ""
	default:
		return errors.New("want --check or --check=connect")
	}
	return nil
}

// runCheck is serve --check: everything serve verifies before it starts,
// then exit. The configuration and the destinations were already built.
func runCheck(ctx context.Context, mode checkMode, db *dbFlags, cfg *fileConfig, listen string, stdout io.Writer) error {
	// Bare --check connects nowhere, so it needs no database URL; one
	// that is given must still parse.
	if mode == "connect" || db.url != "" {
		if err := db.check(); err != nil {
			return err
		}
	}
	if mode == "connect" {
		pool, err := db.openPool(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		var migrated bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, db.schema+"."+migrations.VersionTable).Scan(&migrated); err != nil {
			return describeDBError(err)
		}
		if !migrated {
			return fmt.Errorf("schema %s has no outboxd tables: run outboxd migrate up --schema %s", db.schema, db.schema)
		}
		// Migrated means every migration the dispatcher needs: it refuses
		// to start on an older schema, so must the check. Later ones (the
		// producers') are reported, not refused: they are applied once
		// every producer runs this version (CHANGELOG, migration 15).
		later, err := checkUpToDate(ctx, pool, db.schema)
		if err != nil {
			return err
		}
		if later != "" {
			fmt.Fprintf(stdout, "database: connected, schema %s migrated for this dispatcher (not applied: %s, which producers of this version work without: run outboxd migrate up --schema %s once every producer runs this version)\n",
				db.schema, later, db.schema)
		} else {
			fmt.Fprintf(stdout, "database: connected, schema %s migrated\n", db.schema)
		}
		if err := reportInvalidIndexes(ctx, stdout, pool, db.schema); err != nil {
			return err
		}
		if err := checkDestinations(ctx, stdout, cfg.Destinations); err != nil {
			return err
		}
	}
	console := ""
	if cc := cfg.Console; cc != nil {
		console = fmt.Sprintf(", console %s (%d user(s))", cc.Listen, len(cc.Users))
		if cc.InsecureNoAuth {
			console = fmt.Sprintf(", console %s (insecure_no_auth: no credentials, loopback only)", cc.Listen)
		}
	}
	fmt.Fprintf(stdout, "configuration OK: %d destination(s), schema %s, listen %s%s\n", len(cfg.Destinations), db.schema, listen, console)
	return nil
}

// statusWait bounds how long --check=connect waits to read the migrations.
const statusWait = 10 * time.Second

// checkUpToDate fails unless every migration the dispatcher needs is
// applied to schema (whose version table exists), and returns the later
// ones not applied, if any ("15").
func checkUpToDate(ctx context.Context, pool *pgxpool.Pool, schema string) (later string, err error) {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	// Reading the status takes the migrations' lock, which a migrate up
	// (another pod's serve --migrate) holds for its whole run: a deploy
	// hook waits for it at most statusWait, then says so.
	m, err := migrations.New(sqlDB, &migrations.Config{Schema: schema, LockTimeoutSeconds: uint64(statusWait.Seconds())})
	if err != nil {
		return "", err
	}
	sctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	st, err := m.Status(sctx)
	if sctx.Err() != nil && ctx.Err() == nil {
		return "", fmt.Errorf("schema %s: cannot read its migrations within %s: a migration may be running (its lock is held); try again when it ends", schema, statusWait)
	}
	if err != nil {
		return "", describeDBError(err)
	}
	var (
		pending []string
		refused bool
	)
	for _, s := range st {
		if !s.Applied {
			pending = append(pending, strconv.FormatInt(s.Version, 10))
			refused = refused || s.Version <= dbschema.DispatcherMigration
		}
	}
	if refused {
		return "", fmt.Errorf("schema %s is older than this outboxd (not applied: %s; serve would refuse to start): run outboxd migrate up --schema %s",
			schema, strings.Join(pending, ", "), schema)
	}
	return strings.Join(pending, ", "), nil
}

// invalidIndexesSQL describes each invalid index of outboxd's tables in
// schema $1, a line each (the schema may hold the user's tables too:
// public, or one a DBA prepared; migrate is no advice for theirs). A
// build cut short before its index was ready leaves one that inserts
// skip; one cut short after (or a drop) is written. One still being built
// (another migration run's, seen in pg_stat_progress_create_index) is
// said so: the advice to drop it would break that run (a re-trial's).
const invalidIndexesSQL = `
SELECT CASE WHEN p.pid IS NOT NULL THEN
         format('index %1$s.%2$s is being built (CREATE INDEX CONCURRENTLY, backend pid %3$s: another migration run, most likely); leave it, it is valid once the build ends',
                n.nspname, c.relname, p.pid)
       ELSE
         format('index %1$s.%2$s is invalid (a CREATE or DROP INDEX CONCURRENTLY cut short) and %3$s: '
                'run the migration that was cut short again (outboxd migrate up, or the down that was cut short), or drop it with DROP INDEX CONCURRENTLY %1$s.%2$s',
                n.nspname, c.relname, CASE WHEN i.indisready THEN 'still written on every insert' ELSE 'not written by inserts' END)
       END
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
LEFT JOIN pg_stat_progress_create_index p ON p.index_relid = i.indexrelid
WHERE n.nspname = $1 AND NOT i.indisvalid
  AND (t.relname LIKE 'outbox\_%' OR t.relname LIKE 'inbox\_%' OR t.relname LIKE 'console\_%')
ORDER BY c.relname`

// logInvalidIndexes is serve's reportInvalidIndexes, at its start: a
// warning in the log for each, never a reason not to start.
func logInvalidIndexes(ctx context.Context, pool *pgxpool.Pool, schema string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, invalidIndexesSQL, schema)
	var found []string
	if err == nil {
		found, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		log.Warn("could not look for invalid indexes (outboxd serve --check=connect lists them)", "error", err)
		return
	}
	for _, line := range found {
		log.Warn(line)
	}
}

// reportInvalidIndexes names the schema's invalid indexes: what a CREATE
// or DROP INDEX CONCURRENTLY cut short leaves (migrations 12, 14, 15 and
// 16 build and drop theirs so). Until it goes, every write to its table
// may still add entries to it (a unique one still refuses duplicates).
// Reported, not refused: the dispatcher refuses the one it needs
// (migration 14's) by itself.
func reportInvalidIndexes(ctx context.Context, stdout io.Writer, pool *pgxpool.Pool, schema string) error {
	rows, err := pool.Query(ctx, invalidIndexesSQL, schema)
	if err != nil {
		return describeDBError(err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return describeDBError(err)
	}
	for _, line := range found {
		fmt.Fprintln(stdout, "database: "+line)
	}
	return nil
}
