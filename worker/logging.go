package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pg"
	"github.com/outboxd/outboxd/internal/redact"
)

// logEvery bounds the log lines of one kind: at most one per destination
// and outcome, and one for database failures, per interval; the next line
// says how many were left out.
const logEvery = 10 * time.Second

// logResult logs a recorded attempt that did not deliver: a retry at warn,
// a dead letter at error (each rate-limited per destination), a delivery
// at debug.
func (d *Dispatcher) logResult(r result, status string, delay time.Duration) {
	m := r.msg
	// Built only for a line that goes out: this runs for every message,
	// and most are deliveries logged at debug level, usually off.
	attrs := func() []any {
		return []any{"message_id", m.ID.String(), "destination", m.Destination, "attempt", m.Attempt,
			"status_code", r.res.StatusCode, "error", errText(r.res.Err)}
	}
	switch {
	case status == "delivered":
		if d.log.Enabled(context.Background(), slog.LevelDebug) {
			d.log.Debug("delivered", "message_id", m.ID.String(), "destination", m.Destination, "attempt", m.Attempt,
				"duration", r.duration.String())
		}
	case status == "dead":
		reason := "the destination refused it for good"
		if r.res.Outcome != dispatch.Dead {
			reason = "its retries ran out (max_attempts or max_age)"
		}
		if ok, held := d.logs.Allow(m.Destination + "/dead"); ok {
			// The outcome its attempt row records (dead), with what the
			// destination answered beside it.
			d.log.Error("message dead-lettered; requeue it with 'outboxd outbox requeue'",
				append(attrs(), "outcome", string(dispatch.Dead), "destination_outcome", string(r.res.Outcome), "reason", reason,
					"similar_lines_left_out", held)...)
		}
	case r.abandoned:
		if ok, held := d.logs.Allow(m.Destination + "/abandoned"); ok {
			d.log.Warn("attempt abandoned (stopping, or the lease ran out); the message will be sent again, not counted against its retries",
				append(attrs(), "similar_lines_left_out", held)...)
		}
	case r.res.Outcome == dispatch.Retry:
		if ok, held := d.logs.Allow(m.Destination + "/retry"); ok {
			d.log.Warn("delivery failed; will retry",
				append(attrs(), "retry_in", delay.String(), "similar_lines_left_out", held)...)
		}
	}
}

// dbHealth turns database failures into one line when they start, a
// reminder while they last, and one line when they end, whichever part of
// the dispatcher (32 lanes per destination, the balancer, the listener)
// meets them.
type dbHealth struct {
	log *slog.Logger
	now func() time.Time // time.Now; tests move it

	mu        sync.Mutex
	failing   bool
	announced bool // the start of this failure was logged
	since     time.Time
	lastLine  time.Time
	failures  int
	// lastOp and lastErr are the outage's latest failure, for /readyz.
	lastOp  healthOp
	lastErr error
	logged  map[string]time.Time // by kind and operation: when a refused privilege or a schema error was last logged
	// refused: by operation, its last refusal for a privilege, until one
	// of its tries succeeds (refusedOps).
	refused map[healthOp]time.Time
	// failed: by operation, its last failure in the outage under way: the
	// outage ends once each has succeeded (or aged out as refusals do), not
	// at any success (a lock on outbox_messages timed the idle probe out,
	// and the balancing's next renewal logged "succeed again" while every
	// claim waited: an operator's trial).
	failed map[healthOp]time.Time
	// every is how often an operation is tried while it is needed
	// (Dispatcher.tryEvery; nil: 5 s).
	every   func(healthOp) time.Duration
	metrics *Metrics
}

// refusedFor is how long, at least, a refused operation that is not
// tried again keeps the dispatcher unready: three times its interval
// (claims and recordings are tried again within 5 s while needed, a
// refused unserved check every acquire interval). One that stopped being
// needed (a lane given to another dispatcher) must not hold the 503 for
// ever, and one tried every 20 s must not flap between 503 and 200.
const refusedFor = 30 * time.Second

// A healthOp is an operation dbHealth hears of: its name in the log and
// /readyz, and its label in outboxd_database_errors_total and
// outboxd_database_refused (kept apart, so that rewording a log line does
// not break an alert).
type healthOp struct{ name, label string }

var (
	opClaim     = healthOp{"claim", "claim"}
	opRecord    = healthOp{"recording results", "record"}
	opIdleProbe = healthOp{"probing idle lanes", "idle_probe"}
	opBalance   = healthOp{"lane balancing", "balance"}
	opUnserved  = healthOp{"checking for unserved destinations", "unserved_check"}
	opListen    = healthOp{"listening for commits", "listen"}
	opStopRenew = healthOp{"renewing leases while stopping", "stop_renew"}
)

var healthOps = []healthOp{opClaim, opRecord, opIdleProbe, opBalance, opUnserved, opListen, opStopRenew}

// privilegesDoc is where an operator finds the grants the dispatcher's
// role needs.
const privilegesDoc = `docs/operations.md, "Roles and grants"`

// isConnectionError reports whether err lost the connection, or never
// had one: not the statement's own failure.
func isConnectionError(err error) bool {
	var ce *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &ce), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pgErr):
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}

// isPrivilegeError reports whether the database refused err's statement
// for want of a privilege (SQLSTATE 42501): the role's grants, not an
// outage, which waiting does not end.
func isPrivilegeError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// report records the outcome of a database operation.
func (h *dbHealth) report(op healthOp, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock()
	h.metrics.databaseError(op, err)
	if isSchemaError(err) {
		// Not an outage either: counted as one, the operations that still
		// work (renewals) logged "succeed again" while nothing could be
		// claimed (an operator's trial). A claim's or a recording's also
		// stops the claims (schema.go); the others' tables (the lanes', the
		// dispatchers') are not what the schema watcher looks at, so each
		// says itself what fails.
		if h.mayLog("schema", op, now) {
			h.log.Error("a statement of this dispatcher fails for the schema: "+op.name+" fails until the schema is what this outboxd needs (run `outboxd migrate up`, or undo the change by hand); tried again meanwhile, nothing is lost",
				"operation", op.name, "error", err)
		}
		return
	}
	if isPrivilegeError(err) {
		if h.refused == nil {
			h.refused = map[healthOp]time.Time{}
		}
		h.refused[op] = now
		// Not an outage: the other operations succeeding must not say it
		// ended, nor waiting that it will. Per operation, so that each
		// refused one is named, however often another is.
		if h.mayLog("privilege", op, now) {
			h.log.Error("the database refuses this dispatcher's role a privilege: "+op.name+" fails, and keeps failing until the role is granted it; tried again meanwhile, nothing is lost ("+privilegesDoc+")",
				"operation", op.name, "error", err)
		}
		return
	}
	if err == nil {
		if _, was := h.refused[op]; was && h.mayLog("granted", op, now) {
			h.log.Info("the database grants this dispatcher's role what "+op.name+" needs again", "operation", op.name)
		}
		delete(h.refused, op)
		delete(h.failed, op)
		if op == opClaim {
			// A claim reads what the idle probe reads: the probe, not
			// tried while lanes claim, is not refused or failing either.
			delete(h.refused, opIdleProbe)
			delete(h.failed, opIdleProbe)
		}
		for f, at := range h.failed {
			if !h.recent(f, at, now) {
				delete(h.failed, f)
			}
		}
		if len(h.failed) > 0 {
			return
		}
		// Only an outage whose start was told gets an end line: one
		// flapping operation among healthy ones writes a pair per 10 s.
		if h.failing && h.announced {
			h.lastLine = now
			h.log.Info("database operations succeed again", "failing_for", now.Sub(h.since).Round(time.Millisecond).String(),
				"failed_operations", h.failures)
		}
		h.failing, h.announced, h.failures = false, false, 0
		return
	}
	h.failures++
	h.lastOp, h.lastErr = op, err
	if !isConnectionError(err) {
		// A lock, a timeout: this operation's own, which only its own
		// success ends. A connection lost (a restart of the server) is
		// everyone's: the next success of any operation ends it, or a
		// recording failed once and not tried again (nothing left to
		// record) would hold the end line until it aged out.
		if h.failed == nil {
			h.failed = map[healthOp]time.Time{}
		}
		h.failed[op] = now
	}
	if !h.failing {
		h.failing, h.since = true, now
		if now.Sub(h.lastLine) >= logEvery {
			h.lastLine, h.announced = now, true
			h.log.Warn("database operation failed; the dispatcher retries with backoff, nothing is lost", "operation", op.name, "error", pg.DescribeConnectError(err))
		}
		return
	}
	if now.Sub(h.lastLine) >= 3*logEvery {
		h.lastLine, h.announced = now, true
		h.log.Warn("database operations still failing", "failing_for", now.Sub(h.since).Round(time.Second).String(),
			"failed_operations", h.failures, "operation", op.name, "error", pg.DescribeConnectError(err))
	}
}

// failure describes the outage under way (which operation failed last,
// with what, since when), or returns "" when none is.
func (h *dbHealth) failure() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing || h.lastErr == nil {
		return ""
	}
	// A connection's error in one line, without sslmode=prefer's TLS
	// refusal (pgx's is one line per attempt).
	return fmt.Sprintf("database operations failing for %s, the last: %s: %s",
		h.clock().Sub(h.since).Round(time.Second), h.lastOp.name, redact.Secrets(pg.DescribeConnectError(h.lastErr)))
}

// mayLog reports whether a line of kind for op goes out now: one per
// logEvery each.
func (h *dbHealth) mayLog(kind string, op healthOp, now time.Time) bool {
	key := kind + "/" + op.label
	if now.Sub(h.logged[key]) < logEvery {
		return false
	}
	if h.logged == nil {
		h.logged = map[string]time.Time{}
	}
	h.logged[key] = now
	return true
}

// refusedOps returns, in healthOps' order, the operations the database
// refused this dispatcher's role a privilege for, that have not succeeded
// since, and whose last refusal is recent: within refusedFor, or three
// of their intervals when longer.
func (h *dbHealth) refusedOps() []healthOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock()
	var ops []healthOp
	for _, op := range healthOps {
		if at, ok := h.refused[op]; ok && h.recent(op, at, now) {
			ops = append(ops, op)
		}
	}
	return ops
}

// recent reports whether op's failure at still counts: within refusedFor,
// or three of op's intervals when longer (an operation no longer tried
// must not count for ever).
func (h *dbHealth) recent(op healthOp, at, now time.Time) bool {
	every := 5 * time.Second
	if h.every != nil {
		every = h.every(op)
	}
	return now.Sub(at) < max(refusedFor, 3*every)
}

func (h *dbHealth) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// errText is err's text, or "" for nil, without the secrets a
// Destination's error may quote: it is logged and stored in attempt rows,
// which the console shows.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return redact.Secrets(err.Error())
}
