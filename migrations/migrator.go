package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// Config configures a Migrator. The zero value is ready to use.
type Config struct {
	// Schema holds every object outboxd creates. Default "outboxd".
	Schema string
	// Logger receives one line per applied migration, and lines while one
	// waits for other sessions' transactions (an index built concurrently:
	// about every 10 s; a table's lock: at the 1st, 11th, 21st... try),
	// naming those sessions. Default: no logging.
	Logger *slog.Logger
	// LockTimeoutSeconds is how long to wait for another process's
	// migration run to finish, in whole seconds. Default 300.
	LockTimeoutSeconds uint64
}

// Migrator applies outboxd's migrations to one database.
type Migrator struct {
	db     *sql.DB
	schema string
	opts   []goose.ProviderOption
	log    *slog.Logger // never nil
	// lockWait bounds a wait for another run's lock (LockTimeoutSeconds).
	lockWait time.Duration
}

// New returns a Migrator for db, which may be any database/sql handle to
// PostgreSQL (pgx's stdlib driver, lib/pq...) allowing at least two open
// connections: goose holds one for its lock while migration 9 (batches,
// outside a transaction) uses another, as do the index builds of 15 and 16;
// their notices of what they wait for (Config.Logger) need a third, and
// are not logged without one. Connections are borrowed from db and
// given back with their search_path reset. A nil cfg means the defaults;
// a nil db, or a Schema that is not a valid name, is an error.
func New(db *sql.DB, cfg *Config) (*Migrator, error) {
	if db == nil {
		return nil, errors.New("migrations: New needs a database handle")
	}
	m, err := newMigrator(db, cfg)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return m, nil
}

// newMigrator is New's work; its errors lack the "migrations: " prefix so
// that Up can name itself.
func newMigrator(db *sql.DB, cfg *Config) (*Migrator, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	schema := dbschema.OrDefault(cfg.Schema)
	if err := dbschema.Validate(schema); err != nil {
		return nil, err
	}
	timeout := cfg.LockTimeoutSeconds
	if timeout == 0 {
		timeout = 300
	}
	inner, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID(schema)),
		// Poll every second rather than goose's default 5 s: concurrent
		// starts of several processes are the common case.
		lock.WithLockTimeout(1, timeout),
	)
	if err != nil {
		return nil, fmt.Errorf("session locker: %w", err)
	}
	store, err := database.NewStore(database.DialectPostgres, schema+"."+VersionTable)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithStore(store),
		goose.WithSessionLocker(&schemaLocker{inner: inner, schema: schema, id: lockID(schema), log: newOnline(schema, cfg.Logger).log}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(goMigrations(schema, cfg.Logger)...),
	}
	if cfg.Logger != nil {
		opts = append(opts, goose.WithSlog(cfg.Logger))
	}
	m := &Migrator{db: db, schema: schema, opts: opts, log: newOnline(schema, cfg.Logger).log, lockWait: time.Duration(timeout) * time.Second}
	// Build one provider now so that a broken set of migrations fails here.
	if _, err := goose.NewProvider(goose.DialectCustom, db, FS, opts...); err != nil {
		return nil, err
	}
	return m, nil
}

// provider returns a fresh goose provider. goose remembers per provider that
// its version table exists; down to zero drops that table, so each
// operation starts afresh.
func (m *Migrator) provider() (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectCustom, m.db, FS, m.opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// prepare creates the schema and returns a provider.
func (m *Migrator) prepare(ctx context.Context) (*goose.Provider, error) {
	if err := ensureSchema(ctx, m.db, m.schema); err != nil {
		return nil, fmt.Errorf("migrations: create schema %s: %w", m.schema, err)
	}
	return m.provider()
}

// Schema is the schema this Migrator works on.
func (m *Migrator) Schema() string { return m.schema }

// Up applies every pending migration. When one fails, Up returns those
// applied before it and an error naming the version that failed.
func (m *Migrator) Up(ctx context.Context) ([]*Result, error) {
	return m.up(ctx, "up", math.MaxInt64, (*goose.Provider).Up)
}

// UpTo applies the pending migrations up to and including version, as Up
// does for all of them.
func (m *Migrator) UpTo(ctx context.Context, version int64) ([]*Result, error) {
	return m.up(ctx, fmt.Sprintf("up to %d", version), version, func(p *goose.Provider, ctx context.Context) ([]*goose.MigrationResult, error) {
		return p.UpTo(ctx, version)
	})
}

// up runs an up to target, against a down of another run:
//   - one that waited for the runs' lock behind a down to 0 finds the
//     version table, or the schema, gone (the down's cleanup drops them):
//     nothing was applied, and it starts again from nothing;
//   - goose looks for pending migrations before it takes its lock, so one
//     started while a down ran saw the versions the down was removing,
//     applied nothing and said "up to date", and the down left the schema
//     empty (an operator's trial): an up that applied nothing waits for
//     the run under way (settled) and goes again if the schema is behind.
func (m *Migrator) up(ctx context.Context, op string, target int64, run func(*goose.Provider, context.Context) ([]*goose.MigrationResult, error)) ([]*Result, error) {
	// Only a try that applied nothing goes again (a missing table without
	// a migration failing, or nothing to apply): what it returns is the
	// last try's.
	for tries := 0; ; tries++ {
		p, err := m.prepare(ctx)
		if err != nil {
			return nil, err
		}
		res, err := againAfterDeadlocks(ctx, m.log, op, func() ([]*goose.MigrationResult, error) { return run(p, ctx) })
		var pe *goose.PartialError // a migration failed: never tried again here (but a deadlock's victim, above)
		if err != nil && tries < 3 && !errors.As(err, &pe) && (isSQLState(err, "42P01") || isSQLState(err, "3F000")) {
			continue
		}
		if err != nil {
			return failed(op, res, err)
		}
		if len(res) > 0 {
			return resultsOf(res), nil
		}
		sources := p.ListSources()
		behind, err := m.settledBelow(ctx, min(target, sources[len(sources)-1].Version))
		switch {
		case err != nil || !behind:
			return resultsOf(res), err
		case tries >= 3:
			return nil, fmt.Errorf("migrations: %s: other runs keep taking the schema back (migrate down): run it again once they are done", op)
		}
	}
}

// lockPoll is how often settledBelow asks for the runs' lock.
const lockPoll = 200 * time.Millisecond

// settledBelow waits for a run of this schema under way (its lock, taken
// and let go at once) and reports whether the schema is below version
// then.
func (m *Migrator) settledBelow(ctx context.Context, version int64) (bool, error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("migrations: %w", err)
	}
	defer conn.Close()
	id := lockID(m.schema)
	var holder int
	if conn.QueryRowContext(ctx, lockHolderSQL, id).Scan(&holder) == nil {
		m.log.Info("waiting for another migration run of this schema to end", "schema", m.schema, "backend_pid", holder)
	}
	// Polled, as goose polls its own, for as long (LockTimeoutSeconds): a
	// statement waiting on the lock holds a transaction open, which the
	// other run's CREATE INDEX CONCURRENTLY then waits for, while that run
	// holds the lock (a re-trial's 5-minute deadlock).
	for deadline := time.Now().Add(m.lockWait); ; {
		var got bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&got); err != nil {
			return false, fmt.Errorf("migrations: %w", err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("migrations: another run of schema %s still holds its lock after %s (Config.LockTimeoutSeconds)", m.schema, m.lockWait)
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("migrations: waiting for another run of schema %s: %w", m.schema, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", id) //nolint:errcheck // closing the session releases it too
	var current int64
	err = conn.QueryRowContext(ctx, `SELECT coalesce(max(version_id), 0) FROM `+m.schema+`.`+VersionTable).Scan(&current)
	if isSQLState(err, "42P01") || isSQLState(err, "3F000") {
		return true, nil // dropped by a down to 0
	}
	if err != nil {
		return false, fmt.Errorf("migrations: %w", err)
	}
	return current < version, nil
}

// Down reverts the latest applied migration. Reverting the last one removes
// the schema too (see DownTo).
func (m *Migrator) Down(ctx context.Context) (*Result, error) {
	p, err := m.prepare(ctx)
	if err != nil {
		return nil, err
	}
	var res *goose.MigrationResult
	_, err = againAfterDeadlocks(ctx, m.log, "down", func() ([]*goose.MigrationResult, error) {
		var err error
		res, err = p.Down(ctx)
		return nil, err
	})
	if err != nil {
		if errors.Is(err, goose.ErrNoNextVersion) {
			return nil, m.removeIfEmpty(ctx)
		}
		_, err = failed("down", nil, err)
		return resultOf(res), err
	}
	return resultOf(res), m.removeIfEmpty(ctx)
}

// DownTo reverts migrations until version is the latest applied. Down to 0
// also drops the version table and the schema, when outboxd created it and
// nothing else lives in it, so that nothing of outboxd's is left behind.
func (m *Migrator) DownTo(ctx context.Context, version int64) ([]*Result, error) {
	p, err := m.prepare(ctx)
	if err != nil {
		return nil, err
	}
	op := fmt.Sprintf("down to %d", version)
	res, err := againAfterDeadlocks(ctx, m.log, op, func() ([]*goose.MigrationResult, error) { return p.DownTo(ctx, version) })
	if err != nil {
		return failed(op, res, err)
	}
	return resultsOf(res), m.removeIfEmpty(ctx)
}

// Status lists every known migration and whether it is applied. It only
// reads: on a database outboxd never migrated (no version table in the
// schema) every migration is pending, and nothing is created.
func (m *Migrator) Status(ctx context.Context) ([]*Status, error) {
	p, err := m.provider()
	if err != nil {
		return nil, err
	}
	if migrated, err := m.hasVersionTable(ctx); err != nil || !migrated {
		return pendingStatus(p), err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	out := make([]*Status, len(st))
	for i, s := range st {
		out[i] = statusOf(s)
	}
	return out, nil
}

// Version returns the latest applied migration version (0 when none). It
// only reads, as Status does.
func (m *Migrator) Version(ctx context.Context) (int64, error) {
	if migrated, err := m.hasVersionTable(ctx); err != nil || !migrated {
		return 0, err
	}
	p, err := m.provider()
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: version: %w", err)
	}
	return v, nil
}

// hasVersionTable tells whether the schema has the version table, which
// the first migration run creates.
func (m *Migrator) hasVersionTable(ctx context.Context) (bool, error) {
	var ok bool
	err := m.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, m.schema+"."+VersionTable).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("migrations: look for the version table: %w", err)
	}
	return ok, nil
}

// pendingStatus lists every migration of p as pending, from its sources
// alone.
func pendingStatus(p *goose.Provider) []*Status {
	var st []*Status
	for _, s := range p.ListSources() {
		st = append(st, &Status{Version: s.Version, Name: sourceName(s)})
	}
	return st
}

// Up applies all pending migrations to db in schema ("" for the default).
// It is a shortcut for the common case, hence no *Config: New(db, cfg)
// then Migrator.Up for the rest. db is a database/sql handle, e.g. from
// pgx's driver: import _ "github.com/jackc/pgx/v5/stdlib" and
// sql.Open("pgx", url). A nil db is an error.
func Up(ctx context.Context, db *sql.DB, schema string) error {
	if db == nil {
		return errors.New("migrations: Up needs a database handle (a *sql.DB, not nil)")
	}
	m, err := newMigrator(db, &Config{Schema: schema})
	if err != nil {
		return fmt.Errorf("migrations: Up: %w", err)
	}
	_, err = m.Up(ctx)
	return err
}

// removeIfEmpty drops the version table and, if outboxd created it, the
// schema once no migration is applied. The schema is dropped without
// CASCADE: if a user keeps objects of their own in it, it stays.
func (m *Migrator) removeIfEmpty(ctx context.Context) error {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrations: cleanup: %w", err)
	}
	defer conn.Close()
	id := lockID(m.schema)
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		return fmt.Errorf("migrations: cleanup: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", id) //nolint:errcheck // closing the session releases it too

	var applied bool
	err = conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+m.schema+`.`+VersionTable+` WHERE version_id > 0)`).Scan(&applied)
	if err != nil || applied {
		// A missing version table means there is nothing to clean up.
		return nil
	}
	if _, err := conn.ExecContext(ctx, `DROP TABLE `+m.schema+`.`+VersionTable); err != nil {
		return fmt.Errorf("migrations: drop version table: %w", err)
	}
	// Only a schema that ensureSchema created (and marked) is ours to drop.
	var ours bool
	err = conn.QueryRowContext(ctx, `SELECT coalesce(obj_description(oid, 'pg_namespace') = $2, false)
FROM pg_namespace WHERE nspname = $1`, m.schema, createdMark).Scan(&ours)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (!ours || m.schema == "public") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrations: cleanup: %w", err)
	}
	// 2BP01 (dependent objects still exist): the user keeps objects of
	// their own in the schema; leave it.
	if _, err := conn.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+m.schema); err != nil && !isSQLState(err, "2BP01") {
		return fmt.Errorf("migrations: drop schema: %w", err)
	}
	return nil
}

func lockID(schema string) int64 {
	return int64(crc32.ChecksumIEEE([]byte("outboxd migrations " + schema)))
}
