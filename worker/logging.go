package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/dispatch"
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
	denied    map[string]time.Time // by operation: when its refused privilege was last logged
	// refused: by operation, its last refusal for a privilege, until one
	// of its tries succeeds (refusedOps).
	refused map[string]time.Time
	metrics *Metrics
}

// refusedFor is how long a refused operation that is not tried again
// keeps the dispatcher unready: claims and recordings are tried again
// within 5 s while needed, the unserved check every 10 acquire
// intervals, but one that stopped being needed (the idle probe, once its
// lanes claim) must not hold the 503 for ever.
const refusedFor = 30 * time.Second

// The operations dbHealth hears of, by the names its log lines, the
// database errors metric and /readyz give them.
const (
	opClaim     = "claim"
	opRecord    = "recording results"
	opIdleProbe = "probing idle lanes"
	opBalance   = "lane balancing"
	opUnserved  = "checking for unserved destinations"
	opListen    = "listening for commits"
	opStopRenew = "renewing leases while stopping"
)

var healthOps = []string{opClaim, opRecord, opIdleProbe, opBalance, opUnserved, opListen, opStopRenew}

// privilegesDoc is where an operator finds the grants the dispatcher's
// role needs.
const privilegesDoc = `docs/operations.md, "Roles and grants"`

// isPrivilegeError reports whether the database refused err's statement
// for want of a privilege (SQLSTATE 42501): the role's grants, not an
// outage, which waiting does not end.
func isPrivilegeError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// report records the outcome of a database operation.
func (h *dbHealth) report(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock()
	h.metrics.databaseError(op, err)
	if isSchemaError(err) {
		// Not an outage either: the schema watcher stops the claims, logs
		// it and makes /readyz unready (schema.go). Counted as a failure,
		// the operations that still work (renewals) would log "succeed
		// again" while nothing can be claimed (an operator's trial).
		return
	}
	if isPrivilegeError(err) {
		if h.refused == nil {
			h.refused = map[string]time.Time{}
		}
		h.refused[op] = now
		// Not an outage: the other operations succeeding must not say it
		// ended, nor waiting that it will. Per operation, so that each
		// refused one is named, however often another is.
		if now.Sub(h.denied[op]) >= logEvery {
			if h.denied == nil {
				h.denied = map[string]time.Time{}
			}
			h.denied[op] = now
			h.log.Error("the database refuses this dispatcher's role a privilege: "+op+" fails, and keeps failing until the role is granted it; tried again meanwhile, nothing is lost ("+privilegesDoc+")",
				"operation", op, "error", err)
		}
		return
	}
	if err == nil {
		delete(h.refused, op)
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
	if !h.failing {
		h.failing, h.since = true, now
		if now.Sub(h.lastLine) >= logEvery {
			h.lastLine, h.announced = now, true
			h.log.Warn("database operation failed; the dispatcher retries with backoff, nothing is lost", "operation", op, "error", err)
		}
		return
	}
	if now.Sub(h.lastLine) >= 3*logEvery {
		h.lastLine, h.announced = now, true
		h.log.Warn("database operations still failing", "failing_for", now.Sub(h.since).Round(time.Second).String(),
			"failed_operations", h.failures, "operation", op, "error", err)
	}
}

// refusedOps returns, sorted, the operations the database refused this
// dispatcher's role a privilege for within refusedFor, and that have not
// succeeded since.
func (h *dbHealth) refusedOps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock()
	var ops []string
	for op, at := range h.refused {
		if now.Sub(at) < refusedFor {
			ops = append(ops, op)
		}
	}
	slices.Sort(ops)
	return ops
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
