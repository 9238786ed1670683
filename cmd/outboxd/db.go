package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// dbFlags are the connection flags every database command takes.
type dbFlags struct {
	url            string
	schema         string
	connectTimeout time.Duration
}

// newDBFlagSet returns the flag set of a database command, with the
// connection flags registered.
func newDBFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *dbFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := &dbFlags{}
	db.register(fs)
	return fs, db
}

func (f *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (default $DATABASE_URL)")
	fs.StringVar(&f.schema, "schema", "outboxd", "schema that holds outboxd's tables")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 10*time.Second, "how long to wait for the server")
}

// openSQL checks the URL, connects once to fail early with a clear message,
// and returns a database/sql handle.
func (f *dbFlags) openSQL(ctx context.Context) (*sql.DB, error) {
	if f.url == "" {
		return nil, usageErrorf("no database: pass --database-url or set DATABASE_URL")
	}
	cfg, err := pgx.ParseConfig(f.url)
	if err != nil {
		return nil, usageErrorf("invalid --database-url: %v", describeParseError(err))
	}
	db := stdlib.OpenDB(*cfg)
	pctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, describeDBError(err)
	}
	return db, nil
}

// openPool is openSQL for pgx's pool.
func (f *dbFlags) openPool(ctx context.Context) (*pgxpool.Pool, error) {
	if f.url == "" {
		return nil, usageErrorf("no database: pass --database-url or set DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(f.url)
	if err != nil {
		return nil, usageErrorf("invalid --database-url: %v", describeParseError(err))
	}
	if err := dbschema.Validate(f.schema); err != nil {
		return nil, usageErrorf("%v", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, describeDBError(err)
	}
	return pool, nil
}

func describeParseError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// ParseConfigError's text repeats the URL; say only what is wrong.
		if inner := errors.Unwrap(pe); inner != nil {
			return inner
		}
	}
	return err
}

// describeDBError turns connection and privilege errors into a sentence an
// operator can act on.
func describeDBError(err error) error {
	var ce *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return fmt.Errorf("permission denied: %s (SQLSTATE 42501): the role needs CREATE on the database, or an existing schema it owns", pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "28P01", errors.As(err, &pgErr) && pgErr.Code == "28000":
		return fmt.Errorf("authentication failed: %s", pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return fmt.Errorf("database does not exist: %s", pgErr.Message)
	case errors.As(err, &ce):
		// pgconn joins one error per attempt (address, TLS or not), one
		// per line, often the same one twice.
		var lines []string
		for _, l := range strings.Split(errors.Unwrap(ce).Error(), "\n") {
			if !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
		return fmt.Errorf("cannot connect to PostgreSQL: %s", strings.Join(lines, "; "))
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("cannot connect to PostgreSQL: timed out")
	}
	return err
}
