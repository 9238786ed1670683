package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// docs/configuration.md: database failures are logged once when they
// start, again every 30 s while they last, and once when they end, however
// many operations fail meanwhile.
func TestDatabaseFailuresLogOncePerOutageAndEvery30s(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	down := errors.New("connection refused")
	count := func(msg string) int { return strings.Count(out.String(), msg) }
	// 64 runners fail every 100 ms for 65 s.
	for step := 0; step < 650; step++ {
		for range 64 {
			h.report(opClaim, down)
		}
		clock = clock.Add(100 * time.Millisecond)
	}
	h.report(opClaim, nil)
	h.report(opClaim, nil)
	if n := count("database operation failed"); n != 1 {
		t.Fatalf("%d start lines:\n%s", n, out.String())
	}
	if n := count("database operations still failing"); n != 2 { // at 30 s and 60 s
		t.Fatalf("%d reminder lines, want 2:\n%s", n, out.String())
	}
	if n := count("database operations succeed again"); n != 1 || !strings.Contains(out.String(), "failed_operations=41600") {
		t.Fatalf("end line:\n%s", out.String())
	}
}

// A connection that flaps (one operation fails, the next succeeds, over
// and over) writes one start line and one end line per 10 s, not a pair
// per flap.
func TestFlappingDatabaseLogsFewLines(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	for range 30 { // 30 flaps over 9 s
		h.report(opClaim, errors.New("terminated"))
		clock = clock.Add(150 * time.Millisecond)
		h.report(opClaim, nil)
		clock = clock.Add(150 * time.Millisecond)
	}
	if n := strings.Count(out.String(), "\n"); n > 2 {
		t.Fatalf("%d lines for 30 flaps within 10 s:\n%s", n, out.String())
	}
}

// A refused privilege is not an outage: it is logged as what it is, with
// where the grants are, at most once per 10 s, and other operations
// succeeding meanwhile do not say it ended (an operator's trial saw a
// permanent grant problem logged as "succeed again" every 20 s).
func TestARefusedPrivilegeIsNotAnOutage(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	denied := fmt.Errorf("worker: balancing: %w", &pgconn.PgError{Code: "42501", Message: "permission denied for table outbox_lanes"})
	for range 25 { // 25 s: the balancer refused every second, the claims fine
		h.report(opBalance, denied)
		h.report(opClaim, nil)
		clock = clock.Add(time.Second)
	}
	text := out.String()
	if n := strings.Count(text, "refuses this dispatcher's role a privilege"); n != 3 { // at 0, 10 and 20 s
		t.Fatalf("%d privilege lines in 25 s, want 3:\n%s", n, text)
	}
	if !strings.Contains(text, `Roles and grants`) || !strings.Contains(text, "level=ERROR") {
		t.Fatalf("the line names no remedy or is not an error:\n%s", text)
	}
	for _, wrong := range []string{"succeed again", "database operation failed", "still failing"} {
		if strings.Contains(text, wrong) {
			t.Fatalf("a refused privilege logged as an outage (%q):\n%s", wrong, text)
		}
	}
}

// Each refused operation is named, however often another is refused.
func TestEveryRefusedOperationIsNamed(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	denied := &pgconn.PgError{Code: "42501", Message: "permission denied"}
	for i := range 100 { // the claims refused every 100 ms, the balancer every second
		h.report(opClaim, denied)
		if i%10 == 5 {
			h.report(opBalance, denied)
		}
		clock = clock.Add(100 * time.Millisecond)
	}
	for _, op := range []string{"operation=claim", `operation="lane balancing"`} {
		if !strings.Contains(out.String(), op) {
			t.Fatalf("%s never named:\n%s", op, out.String())
		}
	}
}

// A statement failing for the schema (a table renamed, a `migrate down`)
// is not an outage: counted as one, the renewals that still succeeded
// logged "database operations succeed again" while nothing could be
// claimed (an operator's trial). Each failing operation says itself what
// fails, once per 10 s: the schema watcher looks only at outbox_messages,
// and a renamed outbox_dispatchers table was otherwise said nowhere (a
// review's).
func TestASchemaErrorIsNotAnOutage(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	gone := fmt.Errorf("worker: unserved: %w", &pgconn.PgError{Code: "42P01", Message: `relation "outboxd.outbox_dispatchers" does not exist`})
	for range 25 { // 25 s: the check failing every second, the balancing fine
		h.report(opUnserved, gone)
		h.report(opBalance, nil)
		clock = clock.Add(time.Second)
	}
	text := out.String()
	if n := strings.Count(text, "fails for the schema"); n != 3 || !strings.Contains(text, "outbox_dispatchers") ||
		!strings.Contains(text, `operation="checking for unserved destinations"`) {
		t.Fatalf("%d schema lines in 25 s, want 3 naming the operation and the table:\n%s", n, text)
	}
	for _, wrong := range []string{"succeed again", "database operation failed", "still failing"} {
		if strings.Contains(text, wrong) {
			t.Fatalf("a schema error logged as an outage (%q):\n%s", wrong, text)
		}
	}
}

// A refused operation keeps the dispatcher unready (Refused, /readyz)
// until one of its tries succeeds (a claim's also clears the idle probe,
// which reads what a claim reads and is not tried while lanes claim), or,
// not tried again, for refusedFor (30 s) after its last refusal, or three
// of its intervals when longer (an unserved check every 20 s).
func TestARefusedOperationIsNamedUntilItSucceedsOrFor30s(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.DiscardHandler), now: func() time.Time { return clock },
		every: func(op healthOp) time.Duration {
			if op == opUnserved {
				return 20 * time.Second
			}
			return 5 * time.Second
		}}
	denied := &pgconn.PgError{Code: "42501", Message: "permission denied for table outbox_messages"}
	names := func() []string {
		var out []string
		for _, op := range h.refusedOps() {
			out = append(out, op.name)
		}
		return out
	}
	h.report(opClaim, denied)
	h.report(opIdleProbe, denied)
	h.report(opBalance, nil)
	if got := names(); !slices.Equal(got, []string{"claim", "probing idle lanes"}) {
		t.Fatalf("refused after two refusals: %q", got)
	}
	h.report(opClaim, nil)
	if got := names(); len(got) != 0 {
		t.Fatalf("refused after a claim succeeded: %q", got)
	}
	h.report(opRecord, denied)
	h.report(opUnserved, denied)
	if refusedFor != 30*time.Second {
		t.Fatalf("refusedFor is %s; docs/configuration.md says 30 s", refusedFor)
	}
	clock = clock.Add(refusedFor - time.Millisecond)
	if got := names(); len(got) != 2 {
		t.Fatalf("refused just before 30 s: %q", got)
	}
	clock = clock.Add(time.Millisecond)
	if got := names(); !slices.Equal(got, []string{"checking for unserved destinations"}) {
		t.Fatalf("refused 30 s after the last refusals: %q, want the unserved check's only (every 20 s)", got)
	}
	clock = clock.Add(30 * time.Second)
	if got := names(); len(got) != 0 {
		t.Fatalf("refused 60 s after the last refusals: %q", got)
	}
	h.report(opIdleProbe, errors.New("connection refused"))
	if got := names(); len(got) != 0 {
		t.Fatalf("an outage counted as a refusal: %q", got)
	}
}

// An outage ends when what failed succeeds, not at any success: a lock on
// outbox_messages timed the idle probe out, and the next renewal logged
// "database operations succeed again" while every claim waited on the
// lock (an operator's trial). A claim's success stands for the probe's; an
// operation no longer tried ages out as refusals do (30 s here).
func TestAnOutageEndsWhenWhatFailedSucceeds(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := dbHealth{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	timeout := errors.New("timeout: context deadline exceeded")
	h.report(opIdleProbe, timeout)
	h.report(opClaim, timeout)
	for range 5 {
		clock = clock.Add(time.Second)
		h.report(opBalance, nil)
		h.report(opUnserved, nil)
	}
	if strings.Contains(out.String(), "succeed again") {
		t.Fatalf("the outage ended while the claims still failed:\n%s", out.String())
	}
	h.report(opClaim, nil)
	if n := strings.Count(out.String(), "succeed again"); n != 1 {
		t.Fatalf("%d end lines once the claims succeeded (the probe's included), want 1:\n%s", n, out.String())
	}
	clock = clock.Add(time.Minute)
	h.report(opRecord, timeout)
	clock = clock.Add(refusedFor - time.Second)
	h.report(opBalance, nil)
	if n := strings.Count(out.String(), "succeed again"); n != 1 {
		t.Fatalf("the second outage ended before its recording succeeded or aged out:\n%s", out.String())
	}
	clock = clock.Add(time.Second)
	h.report(opBalance, nil)
	if n := strings.Count(out.String(), "succeed again"); n != 2 {
		t.Fatalf("the second outage did not end once its recording aged out (30 s):\n%s", out.String())
	}
	// A restart of the server: every operation loses its connection, and
	// the first success of any ends it (a recording that failed so may
	// not be tried again: nothing left to record).
	clock = clock.Add(time.Minute)
	restart := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	for _, op := range []healthOp{opRecord, opClaim, opIdleProbe, opUnserved} {
		h.report(op, restart)
	}
	clock = clock.Add(2 * time.Second)
	h.report(opBalance, nil)
	if n := strings.Count(out.String(), "succeed again"); n != 3 {
		t.Fatalf("a restart's outage did not end at the first success:\n%s", out.String())
	}
}
