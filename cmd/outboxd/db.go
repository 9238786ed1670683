package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// dbFlags are the connection flags every database command takes.
type dbFlags struct {
	cmd            string
	url            string
	schema         string
	connectTimeout time.Duration
	flags          *flag.FlagSet // to tell a --connect-timeout given from its default
	perHost        time.Duration // each host's bound, once boundConnects ran
	perHostFrom    string        // where perHost came from, for errors
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
		"(one it refuses fails at once); when not given, the URL's connect_timeout counts if it has one")
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

// openSQL checks the URL, connects once to fail early with a clear message,
// and returns a database/sql handle.
func (f *dbFlags) openSQL(ctx context.Context) (*sql.DB, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	// Parsed as the pool's URL is: its pool_* settings (serve's pool,
	// from a URL the commands share) are checked and left out, where pgx
	// alone sent them to the server as parameters, which refused them.
	pcfg, err := pgxpool.ParseConfig(f.url)
	if err != nil {
		return nil, f.urlErr(describeParseError(err))
	}
	cfg := pcfg.ConnConfig
	f.nameSessions(cfg.RuntimeParams)
	wait := f.boundConnects(&cfg.Config)
	db := stdlib.OpenDB(*cfg)
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, f.connectErr(err, &cfg.Config)
	}
	return db, nil
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

// openPool is openSQL for pgx's pool.
func (f *dbFlags) openPool(ctx context.Context) (*pgxpool.Pool, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(f.url)
	if err != nil {
		return nil, f.urlErr(describeParseError(err))
	}
	f.nameSessions(cfg.ConnConfig.RuntimeParams)
	f.boundLockWaits(cfg.ConnConfig.RuntimeParams)
	wait := f.boundConnects(&cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, f.connectErr(err, &cfg.ConnConfig.Config)
	}
	return pool, nil
}

// boundConnects makes --connect-timeout bound each host's connection
// attempt, this first one and every one the pool makes later, and returns
// how long the first connection may take in all: one bound per host, and
// one more for the ping. It bounded the whole first attempt: a silent
// first host of a multi-host URL used it up and the next one, up and
// writable, was never tried (an operator's failover trial). A
// connect_timeout in the URL counts unless the flag is given.
func (f *dbFlags) boundConnects(cfg *pgconn.Config) time.Duration {
	given := false
	if f.flags != nil {
		f.flags.Visit(func(fl *flag.Flag) { given = given || fl.Name == "connect-timeout" })
	}
	f.perHostFrom = "the URL's connect_timeout"
	if given || cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout, f.perHostFrom = f.connectTimeout, "--connect-timeout"
	}
	f.perHost = cfg.ConnectTimeout
	return cfg.ConnectTimeout * time.Duration(len(connectHosts(cfg))+1)
}

// connectHosts are the host:port pairs a connection tries, in order, each
// once (pgx lists a host twice under sslmode=prefer: with TLS, without).
func connectHosts(cfg *pgconn.Config) []string {
	hosts := []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	for _, fb := range cfg.Fallbacks {
		if h := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
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
	if _, err := pgxpool.ParseConfig(u); err != nil {
		return describeParseError(err)
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
		return fmt.Errorf("%s: want a whole number", msg)
	case inner != nil && strings.HasPrefix(inner.Error(), "time: "):
		// time.ParseDuration's error quotes the value and names Go's package.
		return fmt.Errorf("%s: want a duration such as 30s, 5m or 2h", msg)
	case inner != nil:
		return fmt.Errorf("%s: %w", msg, inner)
	}
	return errors.New(msg)
}

// connectErr is describeDBError for a first connection, naming the server
// (host and port: no credentials) when it did not answer in time.
func (f *dbFlags) connectErr(err error, cfg *pgconn.Config) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return describeDBError(err)
	}
	// Each attempt's reason, once: a host that did not answer in time
	// named with the bound, other reasons (refused) as pgx gives them.
	silent, lines := connectHosts(cfg), []string(nil)
	var ce *pgconn.ConnectError
	var attempts interface{ Unwrap() []error }
	if errors.As(err, &ce) && errors.As(errors.Unwrap(ce), &attempts) {
		silent = nil
		all := strings.Split(errors.Unwrap(ce).Error(), "\n")
		for _, a := range attempts.Unwrap() {
			addr, _, _ := strings.Cut(a.Error(), " ")
			switch {
			case !errors.Is(a, context.DeadlineExceeded):
				if !tlsRefusedBeside(a.Error(), all) {
					lines = append(lines, a.Error())
				}
			case !slices.Contains(silent, addr):
				silent = append(silent, addr)
			}
		}
	}
	each := ""
	if len(silent) > 1 {
		each = " each"
	}
	msg := fmt.Sprintf("cannot connect to PostgreSQL at %s: no answer within %s%s (%s)", strings.Join(silent, ", "), f.perHost, each, f.perHostFrom)
	if len(lines) > 0 {
		msg += "; " + strings.Join(slices.Compact(lines), "; ")
	}
	return errors.New(msg)
}

// attemptLines are a failed connection's reasons, one per attempt, each
// once. pgconn joins one error per attempt (address, TLS or not), one per
// line, often the same one twice. Under sslmode=prefer (pgx's default) a
// server without TLS refuses the first attempt on each address: that line
// is left out when another attempt on the address says what went wrong
// (/readyz showed "tls error" for a healthy server that was out of
// connections: an operator's trial).
func attemptLines(ce *pgconn.ConnectError) []string {
	all := strings.Split(errors.Unwrap(ce).Error(), "\n")
	var lines []string
	for _, l := range all {
		if !tlsRefusedBeside(l, all) && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return lines
}

// tlsRefusedBeside reports whether attempt l is a server's refusal of TLS
// with another attempt on its address among all.
func tlsRefusedBeside(l string, all []string) bool {
	addr, _, _ := strings.Cut(l, " ")
	return strings.HasSuffix(l, ": tls error: server refused TLS connection") &&
		slices.ContainsFunc(all, func(o string) bool { return o != l && strings.HasPrefix(o, addr+" ") })
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
		return fmt.Errorf("cannot connect to PostgreSQL: %s", strings.Join(attemptLines(ce), "; "))
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("cannot connect to PostgreSQL: timed out")
	}
	return err
}
