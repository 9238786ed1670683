package console

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultRequestTimeout is how long one request may wait for PostgreSQL
// (Config.RequestTimeout): past it the page answers 503 "database
// unavailable" instead of hanging while the database does not answer.
const DefaultRequestTimeout = 10 * time.Second

// PoolSize is how many connections the console's own pool holds
// (ConfigurePool): a few operators' pages at a time, never the
// dispatcher's connections.
const PoolSize = 3

// ConfigurePool makes cfg the console's own pool: PoolSize connections,
// none kept idle, and statement_timeout equal to the request deadline, so a
// query that outlives its page is cancelled by the server too.
func ConfigurePool(cfg *pgxpool.Config, requestTimeout time.Duration) {
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	cfg.MaxConns, cfg.MinConns = PoolSize, 0
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(requestTimeout.Milliseconds(), 10)
}

// withDeadline gives each request at most timeout to do its work.
func withDeadline(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// errUnavailable is what a page or the API says when PostgreSQL did not
// answer in time, or could not be reached.
const errUnavailable = "database unavailable: PostgreSQL did not answer in time or cannot be reached; try again shortly"

// errActionUnfinished is what a requeue or purge says when it ran out of
// time: nothing was changed (its transaction rolled back), and retrying
// does not help if the selection is what is too large.
const errActionUnfinished = "the action did not finish within the console's request deadline and changed nothing: " +
	"PostgreSQL may be unreachable, or the selection is too large for the console; narrow the selection, " +
	"or use 'outboxd outbox requeue' / 'outboxd outbox purge', which have no such deadline"

// unavailable tells a database that did not answer or cannot be reached
// (503) from a query that failed (500): the request's deadline, the
// server's statement_timeout, a connection that failed or was lost.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 57014: statement_timeout; class 08: connection; 57P0x: shut down.
		return pgErr.Code == "57014" || pgErr.Code[:2] == "08" || pgErr.Code[:4] == "57P0"
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || errors.As(err, &connErr) ||
		errors.As(err, &netErr) || pgconn.SafeToRetry(err)
}

// retryable is a deadlock or serialization failure: 409, try again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// badText is PostgreSQL refusing a value as text: a NUL byte (22P05) or
// bytes that are not valid in the encoding (22021); the request's fault.
func badText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22P05" || pgErr.Code == "22021")
}

// cleanInput answers 400 to a request whose path or query holds a NUL byte
// or bytes that are not UTF-8: no value in outboxd's tables can hold them,
// and PostgreSQL would refuse them as an error.
func (c *Console) cleanInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad := !cleanText(r.URL.Path)
		for k, vs := range r.URL.Query() {
			bad = bad || !cleanText(k)
			for _, v := range vs {
				bad = bad || !cleanText(v)
			}
		}
		if bad {
			c.fail(w, r, http.StatusBadRequest, "a value holds a NUL byte or is not valid UTF-8")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
