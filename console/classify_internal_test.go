package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// How an error becomes an answer: a deadlock or serialization failure on an
// action is a 409 "try again"; a statement_timeout, a connection failure or
// the request's deadline a 503; a value PostgreSQL refuses as text a 400.
func TestClassify(t *testing.T) {
	t.Parallel()
	c := &Console{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r := httptest.NewRequest("POST", "/api/dead/requeue", nil)
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("requeue: %w", &pgconn.PgError{Code: "40P01"}), 409},
		{fmt.Errorf("requeue: %w", &pgconn.PgError{Code: "40001"}), 409},
		{fmt.Errorf("events: %w", &pgconn.PgError{Code: "57014"}), 503},
		{fmt.Errorf("events: %w", &pgconn.PgError{Code: "08006"}), 503},
		{fmt.Errorf("events: %w", context.DeadlineExceeded), 503},
		{fmt.Errorf("events: %w", &pgconn.PgError{Code: "22021"}), 400},
		{fmt.Errorf("events: %w", &pgconn.PgError{Code: "42P01"}), 500},
		{errCountChanged, 409},
	} {
		if code, msg := c.classify(r, tc.err); code != tc.code {
			t.Errorf("%v: %d %q, want %d", tc.err, code, msg, tc.code)
		}
	}
}

// A request whose client went away ends quietly: no ERROR line.
func TestClassifyClientGone(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	c := &Console{log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/events", nil).WithContext(ctx)
	if code, _ := c.classify(r, fmt.Errorf("events: %w", context.Canceled)); code != 503 || logs.Len() != 0 {
		t.Fatalf("client gone: %d, logged %q", code, logs.String())
	}
}

// An action that runs out of time says what an operator can do: it may be
// PostgreSQL, or a selection too large for the console's deadline, which
// no retry fixes; a page that does gets the plain 503.
func TestClassifyActionTimeoutNamesTheWayOut(t *testing.T) {
	t.Parallel()
	c := &Console{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	timeout := fmt.Errorf("requeue: %w", &pgconn.PgError{Code: "57014"})
	for _, path := range []string{"/dead/requeue", "/api/dead/purge"} {
		code, msg := c.classify(httptest.NewRequest("POST", path, nil), timeout)
		if code != 503 || !strings.Contains(msg, "narrow the selection") || !strings.Contains(msg, "outboxd outbox requeue") {
			t.Errorf("%s: %d %q", path, code, msg)
		}
	}
	if _, msg := c.classify(httptest.NewRequest("GET", "/events", nil), timeout); msg != errUnavailable {
		t.Errorf("a page: %q", msg)
	}
}

// A privilege the database refuses outboxd's role is named as such, with
// where the grants are, in the answer and the log (an operator's trial got
// "the database query failed" and a raw error).
func TestClassifyRefusedPrivilege(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	c := &Console{log: slog.New(slog.NewTextHandler(&logs, nil))}
	err := fmt.Errorf("pause: %w", &pgconn.PgError{Code: "42501", Message: "permission denied for table console_audit"})
	code, msg := c.classify(httptest.NewRequest("POST", "/api/destinations/x/pause", nil), err)
	if code != 500 || !strings.Contains(msg, "refuses outboxd's role a privilege") || !strings.Contains(msg, "Roles and grants") {
		t.Fatalf("%d %q", code, msg)
	}
	if !strings.Contains(logs.String(), "Roles and grants") || !strings.Contains(logs.String(), "console_audit") {
		t.Fatalf("log: %s", logs.String())
	}
}
