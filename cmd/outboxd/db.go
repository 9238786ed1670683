package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pg"
)

// dbFlags are the connection flags every database command takes.
type dbFlags struct {
	cmd            string
	url            string
	schema         string
	connectTimeout time.Duration
	flags          *flag.FlagSet // to tell a --connect-timeout given from its default
	perAddress     time.Duration // each address's bound, once boundConnects ran
	boundFrom      string        // where perAddress came from, for errors
	// givenEmpty names a connection flag typed with an empty value (an
	// unset shell variable): refused, not read as "the default", which
	// would act on another database or schema than meant.
	givenEmpty string
	// Where url and schema came from, once resolved, for errors.
	resolved        bool
	urlAt, schemaAt origin
}

// newDBFlags returns the flags of a database command, with the connection
// flags registered.
func newDBFlags(cmd, usage string) (*cmdFlags, *dbFlags) {
	fs := newCmdFlags(cmd, usage)
	db := &dbFlags{cmd: cmd}
	db.register(fs.FlagSet)
	return fs, db
}

// register adds the connection flags. The URL's default is never a flag
// default: help would print it, password and all; resolve fills it in after
// parsing.
func (f *dbFlags) register(fs *flag.FlagSet) {
	f.flags = fs
	fs.Var(givenString{&f.url, "database-url", &f.givenEmpty}, "database-url", "PostgreSQL `URL` (default $OUTBOXD_DATABASE_URL, then $DATABASE_URL; "+
		"a password here shows in ps and the shell's history: prefer the variable, PGPASSWORD or a passfile)")
	fs.Var(givenString{&f.schema, "schema", &f.givenEmpty}, "schema", "schema `NAME` for outboxd's tables (default $OUTBOXD_SCHEMA, then outboxd)")
	f.connectTimeout = 10 * time.Second
	fs.Var(boundedDuration{d: &f.connectTimeout, positive: true}, "connect-timeout", "how long a connection attempt may wait for each server to answer "+
		"(one it refuses fails at once); when not given, the URL's connect_timeout (or PGCONNECT_TIMEOUT) counts if it has one")
}

// resolveWith applies the environment to what the flags left unset: flag,
// then OUTBOXD_ variable, then file (serve's config file; nil for none),
// then DATABASE_URL and the default schema.
func (f *dbFlags) resolveWith(file *fileConfig) {
	if f.resolved {
		return
	}
	f.resolved = true
	if file == nil {
		file = &fileConfig{}
	}
	f.url, f.urlAt = pick(f.cmd, f.url, "database-url", "OUTBOXD_DATABASE_URL", file, "database_url", file.DatabaseURL, os.Getenv("DATABASE_URL"))
	if f.urlAt.name == "--database-url" && !f.urlAt.flag {
		f.urlAt = origin{name: "DATABASE_URL"}
	}
	f.schema, f.schemaAt = pick(f.cmd, f.schema, "schema", "OUTBOXD_SCHEMA", file, "schema", file.Schema, dbschema.Default)
}

// nameSessions sets application_name to "outboxd <command>" unless the URL
// sets one: an operator looking at pg_stat_activity (to end one daemon's
// sessions, or find who holds a lock) can tell them apart.
func (f *dbFlags) nameSessions(params map[string]string) {
	_, set := params["application_name"]
	// options=-c application_name=... names it too, but the server applies
	// the startup packet's own parameters after options: ours would win.
	opts := strings.ReplaceAll(strings.ToLower(params["options"]), "-", "_")
	if !set && !strings.Contains(opts, "application_name") {
		params["application_name"] = "outboxd " + f.cmd
	}
}

// cliLockWait is the lock_timeout of the operator's one-shot commands
// (send, outbox, inbox): behind a lock another session holds (a long
// transaction, a migration's), a trial's send and outbox dead waited in
// silence until killed. serve waits as long as it must (it retries), and
// migrate says what it waits for.
const cliLockWait = 10 * time.Second

// boundLockWaits sets lock_timeout to cliLockWait for a one-shot command,
// unless the URL sets one.
func (f *dbFlags) boundLockWaits(params map[string]string) {
	if !boundsLockWaits(f.cmd) {
		return
	}
	_, set := params["lock_timeout"]
	opts := strings.ReplaceAll(strings.ToLower(params["options"]), "-", "_")
	if !set && !strings.Contains(opts, "lock_timeout") {
		params["lock_timeout"] = fmt.Sprintf("%dms", cliLockWait.Milliseconds())
	}
}

// boundsLockWaits says whether command (its first word) is one of those
// boundLockWaits sets a lock_timeout for.
func boundsLockWaits(command string) bool {
	name, _, _ := strings.Cut(command, " ")
	return name == "send" || name == "outbox" || name == "inbox"
}

// describeLockWait explains a lock_timeout that boundLockWaits set (55P03),
// keeping PostgreSQL's error; other errors are returned as they are.
func describeLockWait(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		return err
	}
	return fmt.Errorf("another session holds a lock this command needs (a long transaction? a migration?) and lock_timeout "+
		"(%s unless the URL sets it) ran out: look in pg_stat_activity for old transactions, then try again: %w", cliLockWait, err)
}

// givenString is a string flag that notes being given an empty value.
type givenString struct {
	p     *string
	name  string
	empty *string
}

// String is "" before parsing (help shows no default: it could hold a
// password) and the value after; the flag package also calls it on a zero
// givenString.
func (g givenString) String() string {
	if g.p == nil {
		return ""
	}
	return *g.p
}

func (g givenString) Set(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		*g.empty = g.name
	case *g.empty == g.name: // given again, with a value: the last one counts
		*g.empty = ""
	}
	*g.p = v
	return nil
}

// emptyErr refuses a connection flag given empty.
func (f *dbFlags) emptyErr() error {
	if f.givenEmpty == "" {
		return nil
	}
	return &usageError{msg: "--" + f.givenEmpty + " is empty: leave it out, or give it a value", hint: "outboxd " + f.cmd + " --help"}
}

// check refuses what cannot work before any connection is tried.
func (f *dbFlags) check() error {
	if err := f.emptyErr(); err != nil {
		return err
	}
	f.resolveWith(nil)
	if f.url == "" {
		return usageErrorf("no database: pass --database-url, or set OUTBOXD_DATABASE_URL or DATABASE_URL")
	}
	if err := checkDatabaseURL(f.url); err != nil {
		return f.urlErr(err)
	}
	return f.checkSchema()
}

// checkSchema refuses a schema name outboxd could not use.
func (f *dbFlags) checkSchema() error {
	if err := f.emptyErr(); err != nil {
		return err
	}
	f.resolveWith(nil)
	if err := dbschema.Validate(f.schema); err != nil {
		return f.schemaAt.wrap(f.schema, err)
	}
	return nil
}

// urlErr says that the database URL is invalid, naming where it came from.
func (f *dbFlags) urlErr(why error) error {
	msg := "invalid " + f.urlAt.name + ": " + why.Error()
	if strings.HasPrefix(f.urlAt.name, "config ") {
		msg = f.urlAt.name + ": invalid URL: " + why.Error()
	}
	return &usageError{msg: msg, hint: f.urlAt.hint}
}

// checkDatabaseURL says what is wrong with a database URL, if anything,
// without repeating it (it may hold a password).
func checkDatabaseURL(u string) error {
	if scheme, _, ok := strings.Cut(u, "://"); ok && scheme != "postgres" && scheme != "postgresql" {
		return fmt.Errorf("outboxd needs PostgreSQL, got a %s:// URL (want a postgres:// URL)", scheme)
	}
	// pgx splits user info at the first @ and would take the rest of an
	// unencoded password for the host, and print it in "lookup ...".
	if _, rest, ok := strings.Cut(u, "://"); ok {
		authority, _, _ := strings.Cut(rest, "/")
		if strings.Count(authority, "@") > 1 {
			return errors.New("more than one @ before the host: write an @ in the user name or password as %40")
		}
	}
	// As serve's pool reads it: --check passed pool_max_conns=x, which
	// serve then refused (an operator's trial).
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return describeParseError(err)
	}
	// pgx takes it, and its pool panics on it (a ticker of no period).
	if cfg.HealthCheckPeriod <= 0 {
		return errors.New("pool_health_check_period must be more than 0")
	}
	return nil
}

// describeParseError is pgx's reason without the connection string, which
// may hold a password, and without Go's parser wording.
func describeParseError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.Error()
	inner := errors.Unwrap(pe)
	if inner != nil {
		msg = strings.TrimSuffix(msg, " ("+inner.Error()+")")
	}
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+len("`: "):]
	}
	var ue *url.Error
	var ne *strconv.NumError
	switch {
	case errors.As(inner, &ue):
		// url.Error quotes the whole URL, password and all.
		return fmt.Errorf("%s: %w", msg, ue.Err)
	case errors.As(inner, &ne):
		if msg == "invalid connect_timeout" {
			return errors.New("invalid connect_timeout: want a whole number of seconds")
		}
		if errors.Is(ne.Err, strconv.ErrRange) {
			return fmt.Errorf("%s: out of range", msg)
		}
		return fmt.Errorf("%s: want a whole number", msg)
	case inner != nil && strings.HasPrefix(inner.Error(), "time: "):
		// time.ParseDuration's error quotes the value and names Go's package.
		return fmt.Errorf("%s: want a duration such as 30s, 5m or 2h", msg)
	case inner != nil:
		return fmt.Errorf("%s: %w", msg, inner)
	}
	return errors.New(msg)
}

// describeMigrateError is describeDBError for the commands that change
// the schema: they need the owner's privileges, not the runtime role's.
// Without CREATE on the database no schema can be made; refused anything
// else, the role is not the one that owns outboxd's schema (an operator
// who granted CREATE on the database to the runtime role, as the hint
// said, got the same refusal).
func describeMigrateError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		return describeDBError(err)
	}
	if strings.HasPrefix(pgErr.Message, "permission denied for database") {
		return fmt.Errorf("%s (SQLSTATE 42501): the role needs CREATE on the database, or an existing schema it owns", pgErr.Message)
	}
	return fmt.Errorf("%s (SQLSTATE 42501): migrations create and alter outboxd's tables: run them as the role that owns its schema (the one that first migrated it), not the runtime role (docs/operations.md, \"Roles and grants\")", pgErr.Message)
}

// describeDBError turns connection and privilege errors into a sentence an
// operator can act on.
func describeDBError(err error) error {
	var ce *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return fmt.Errorf("%s (SQLSTATE 42501): the role lacks a privilege this command needs (the grants: docs/operations.md, \"Roles and grants\")", pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "28P01", errors.As(err, &pgErr) && pgErr.Code == "28000":
		return fmt.Errorf("authentication failed: %s", pgErr.Message)
	case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"):
		if m := missingRelation.FindStringSubmatch(pgErr.Message); m != nil {
			// Some tables but not this one: a schema older than this
			// outboxd (a view of migration 13, say), not an empty one.
			return fmt.Errorf("schema %s is not migrated, or older than this outboxd (no %s): run outboxd migrate up --schema %s (as the schema's owner), or pass --schema (or set OUTBOXD_SCHEMA) if outboxd's tables are in another schema", m[1], m[2], m[1])
		}
		return fmt.Errorf("%s: run outboxd migrate up (with --schema if you use another)", pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return fmt.Errorf("database does not exist: %s", pgErr.Message)
	case errors.As(err, &ce):
		return errors.New(pg.DescribeConnectError(ce))
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("cannot connect to PostgreSQL: timed out")
	}
	return err
}
