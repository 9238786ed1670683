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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/internal/pg"
)

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
	f.boundConnects(&cfg.Config)
	db := stdlib.OpenDB(*cfg)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, f.connectErr(ctx, err)
	}
	var addr net.Addr
	_ = conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			addr = c.Conn().PgConn().Conn().RemoteAddr()
		}
		return nil
	})
	pctx, cancel := context.WithTimeout(ctx, f.perAddress)
	defer cancel()
	err = conn.PingContext(pctx)
	_ = conn.Close()
	if err != nil {
		go db.Close() // waits for the connection's close, which may hang as the ping did
		return nil, f.pingErr(ctx, err, timedOut(ctx, pctx), addr)
	}
	return db, nil
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
	f.boundConnects(&cfg.ConnConfig.Config)
	stickTo(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, f.connectErr(ctx, err)
	}
	addr := conn.Conn().PgConn().Conn().RemoteAddr()
	pctx, cancel := context.WithTimeout(ctx, f.perAddress)
	defer cancel()
	err = conn.Ping(pctx)
	conn.Release()
	if err != nil {
		// pgx drains a connection it closes for up to 15 s: a command
		// that fails here need not wait for that.
		go pool.Close()
		return nil, f.pingErr(ctx, err, timedOut(ctx, pctx), addr)
	}
	return pool, nil
}

// boundConnects makes --connect-timeout bound each address's connection
// attempt (pgx tries each address of each host of the URL in turn, with a
// bound of its own), this first one and every one the pool makes later.
// One bound for the whole first connection let a silent first host of a
// multi-host URL use it up, and the next host, up and writable, was never
// tried (an operator's failover trial). The URL's connect_timeout (or
// PGCONNECT_TIMEOUT) counts unless the flag is given; 0 there, as none,
// gets the flag's default. A host name's lookup is not bounded by it.
func (f *dbFlags) boundConnects(cfg *pgconn.Config) {
	given := false
	if f.flags != nil {
		f.flags.Visit(func(fl *flag.Flag) { given = given || fl.Name == "connect-timeout" })
	}
	f.boundFrom = "the URL's connect_timeout"
	if !hasSetting(f.url, "connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") != "" {
		f.boundFrom = "PGCONNECT_TIMEOUT" // pgx reads it where the URL has none
	}
	if given || cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout, f.boundFrom = f.connectTimeout, "--connect-timeout"
		// pgx's dialer for a URL's connect_timeout bounds the dial by it:
		// the flag must win there too. No timeout of its own: the attempt's
		// context bounds it. KeepAlive as pgx's own dialer.
		cfg.DialFunc = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	f.perAddress = cfg.ConnectTimeout
}

// connectErr is describeDBError for a first connection, naming each
// address that did not answer in time, with the bound it waited.
func (f *dbFlags) connectErr(ctx context.Context, err error) error {
	if ctx.Err() != nil { // a stop, not the servers' silence
		return errStoppedConnecting
	}
	var ce *pgconn.ConnectError
	var attempts interface{ Unwrap() []error }
	if !silence(err) || !errors.As(err, &ce) || !errors.As(errors.Unwrap(ce), &attempts) {
		return describeDBError(err)
	}
	all := strings.Split(errors.Unwrap(ce).Error(), "\n")
	var silent, lines []string
	for _, a := range attempts.Unwrap() {
		// "address (host): reason"
		addr, _, _ := strings.Cut(a.Error(), ": ")
		switch {
		case !silence(a):
			if !pg.TLSRefusedBeside(a.Error(), all) && !slices.Contains(lines, a.Error()) {
				lines = append(lines, a.Error())
			}
		case !slices.Contains(silent, addr):
			silent = append(silent, addr)
		}
	}
	each := ""
	if len(silent) > 1 {
		each = " each"
	}
	msg := fmt.Sprintf("cannot connect to PostgreSQL at %s: no answer within %s%s (%s)", strings.Join(silent, ", "), f.perAddress, each, f.boundFrom)
	for _, l := range lines {
		msg += "; " + l
	}
	return errors.New(msg)
}

// silence reports whether err is a wait that ran out: the attempt's
// deadline, or a dial's own timeout (pgx's dialer for a URL's
// connect_timeout has one, racing the deadline).
func silence(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// errStoppedConnecting is a stop (a signal) while a command connected.
var errStoppedConnecting = errors.New("stopped while connecting to the database")

// timedOut reports whether pctx, made from ctx, ran out of time, not ctx
// cancelled (a stop while waiting is not the server's silence).
func timedOut(ctx, pctx context.Context) bool {
	return ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded)
}

// pingErr explains a first query that failed on a connection made: one
// that timed out names the server that took the connection and then said
// nothing (it named every host of the URL as silent).
func (f *dbFlags) pingErr(ctx context.Context, err error, timedOut bool, addr net.Addr) error {
	// ctx, not err: database/sql reports a cancelled ping as ErrBadConn.
	if ctx.Err() != nil {
		return errStoppedConnecting
	}
	if !timedOut || addr == nil {
		return describeDBError(err)
	}
	return fmt.Errorf("connected to PostgreSQL at %s, which then did not answer a query within %s (%s)", addr, f.perAddress, f.boundFrom)
}

// hostsWithoutRole lists the URL's hosts when it names several and does
// not ask for a writable one (target_session_attrs read-write or
// primary): each new connection then tries them in the URL's order, waits
// out a silent first one each time, and may land on a standby. One server
// written two ways (localhost,127.0.0.1) is listed too.
func hostsWithoutRole(cfg *pgconn.Config) []string {
	if asksForWrites(cfg) {
		return nil
	}
	hosts := []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	for _, fb := range cfg.Fallbacks {
		if h := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))); !slices.Contains(hosts, h) {
			hosts = append(hosts, h) // sslmode=prefer lists each host twice
		}
	}
	if len(hosts) < 2 {
		return nil
	}
	return hosts
}

// hasSetting reports whether a URL's query, or a keyword/value string,
// sets key (not a value that merely contains it).
func hasSetting(dsn, key string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		// The query alone: url.Parse refuses a multi-host URL of IPv6
		// literals, which pgx takes.
		_, query, _ := strings.Cut(dsn, "?")
		q, err := url.ParseQuery(query)
		return err == nil && q.Has(key)
	}
	return regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(key) + `\s*=`).MatchString(dsn)
}
