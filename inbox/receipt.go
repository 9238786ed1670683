package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/eventkey"
	"github.com/outboxd/outboxd/outbox"
)

// logMax bounds every value from a request that a log line echoes.
const logMax = 300

// errReplay: the body was seen under another event id (BodyDedupe).
var errReplay = errors.New("inbox: body already received under another id")

// process runs the receipt transaction and says how to answer.
func (rc *Receiver) process(ctx context.Context, src *Source, d *Delivery, bodyKey string) (code int, status, reason string) {
	start := time.Now()
	defer func() {
		rc.cfg.Metrics.observe(src.Name, status, time.Since(start))
	}()
	var res Result
	leave, err := rc.inflight.enter(ctx, src.Name+"\x00"+d.ID)
	if err != nil {
		return rc.gaveUpWaiting(src, d, err)
	}
	defer leave()
	if bodyKey != "" {
		// A replay of a body under way (a fresh id, or none: then the id is
		// the body key) waits here too, not on the body key's row lock
		// with a connection. Body keys have gates of their own (no source
		// name starts with NUL), taken after the id's: no two receipts
		// wait for each other's.
		leaveBody, err := rc.inflight.enter(ctx, "\x00"+src.Name+"\x00"+bodyKey)
		if err != nil {
			return rc.gaveUpWaiting(src, d, err)
		}
		defer leaveBody()
	}
	db, release, err := rc.receiptDB(ctx)
	if err != nil {
		return rc.answer(ctx, rc.pool, src, d, res, err)
	}
	defer release()
	err = rc.inTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		status := StatusProcessed
		if src.Async {
			status = StatusReceived
		}
		res, err = rc.inbox.Record(ctx, tx, Event{
			Source: src.Name, ID: d.ID, BestEffort: d.BestEffort, Type: d.Type, OccurredAt: d.OccurredAt,
			SignedAt: d.SignedAt, Payload: d.Body, Headers: rc.storable(src, d.Header), Status: status,
		})
		if err != nil || !res.New {
			return err
		}
		if bodyKey != "" && bodyKey != d.ID {
			// A second key for the body, in the same transaction: a replay
			// under a fresh id finds it and rolls back, leaving nothing.
			seen, err := rc.inbox.Record(ctx, tx, Event{Source: src.Name, ID: bodyKey, BestEffort: true, Type: d.Type,
				Refs: map[string]string{"body_of": truncate(d.ID, eventkey.MaxLen)}})
			if err != nil {
				return err
			}
			if !seen.New {
				return errReplay
			}
		}
		if src.Async {
			return rc.enqueueAsync(ctx, tx, d)
		}
		return src.Handle(ctx, tx, d)
	})
	return rc.answer(ctx, db, src, d, res, err)
}

// gaveUpWaiting answers a receipt that waited in the process behind
// another of its event (or body) until its context ended: 503, so that the
// sender tries again, and no failure row, since the receipt under way is
// processing the event (such rows said "failed" for events processed once).
func (rc *Receiver) gaveUpWaiting(src *Source, d *Delivery, err error) (int, string, string) {
	rc.cfg.Metrics.count(src.Name, string(FailureFailed))
	return http.StatusServiceUnavailable, "failed", fmt.Sprintf("a receipt of this event is under way here and did not end in time: %v", err)
}

// receiptDB is the connection a receipt runs on, held until release: a
// failed receipt writes its failure row on it (and an async one marks its
// event rejected). Through the pool, the row waited behind the receipts
// queued for a connection, and under load (a trial's pool of 3, handlers of
// 1.5 s) half of them were dropped after recordFailure's 2 s. Only for a
// *pgxpool.Pool itself: a type of the caller's that wraps one may do its
// own work in Begin (a role, a tenant for row-level security), which a
// connection's Begin would skip.
func (rc *Receiver) receiptDB(ctx context.Context) (ReceiverDB, func(), error) {
	p, ok := rc.pool.(*pgxpool.Pool)
	if !ok {
		return rc.pool, func() {}, nil
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Release, nil
}

// answer says how to answer a receipt that ended with res and err; db is
// the connection it ran on (for the failure row).
func (rc *Receiver) answer(ctx context.Context, db ReceiverDB, src *Source, d *Delivery, res Result, err error) (code int, status, reason string) {
	switch {
	case errors.Is(err, errReplay):
		return http.StatusOK, "duplicate", ""
	case err == nil && !res.New && res.Status == StatusRejected:
		// One rule for every source: a rejected event is answered 422 on
		// every delivery, never 200, so the sender's dashboard keeps
		// showing it as refused. The failure row counts the retry.
		rc.recordFailure(db, src.Name, d.ID, FailureRejected, "", http.StatusUnprocessableEntity)
		return http.StatusUnprocessableEntity, "rejected", ""
	case err == nil && !res.New:
		return http.StatusOK, "duplicate", ""
	case err == nil && src.Async:
		return http.StatusOK, "accepted", ""
	case err == nil:
		return http.StatusOK, "processed", ""
	}
	var p *panicError
	switch {
	case errors.As(err, &p):
		rc.recordFailure(db, src.Name, d.ID, FailurePanic, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError, "failed", err.Error()
	case errors.Is(err, errTxClosed):
		// A bug in the handler: retried (if it committed, the retry is a
		// duplicate), but not as an outage.
		rc.recordFailure(db, src.Name, d.ID, FailureFailed, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError, "failed", err.Error()
	case permanent(err):
		return rc.rejectEvent(ctx, db, src, d, err)
	default:
		err = rc.timedOut(ctx, err)
		rc.recordFailure(db, src.Name, d.ID, FailureFailed, err.Error(), http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable, "failed", err.Error()
	}
}

// timedOut says, in err, that the receipt's deadline cut it, when it did.
func (rc *Receiver) timedOut(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the receipt ran past ReceiverConfig.Timeout (%s): %w", rc.cfg.Timeout, err)
	}
	return err
}

// errTxClosed: the handler committed or rolled back the receipt's
// transaction, which was answered "503 tx is closed" (after a commit, its
// effects were stored).
var errTxClosed = errors.New("the handler committed or rolled back the receipt's transaction itself; it must return instead, and the receiver commits or rolls back")

// rejectEvent keeps an event whose processing failed permanently as
// rejected: operators see it, retries get the same answer.
func (rc *Receiver) rejectEvent(ctx context.Context, db ReceiverDB, src *Source, d *Delivery, cause error) (int, string, string) {
	var rej Result
	err := rc.inTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		rej, err = rc.inbox.Record(ctx, tx, Event{
			Source: src.Name, ID: d.ID, BestEffort: d.BestEffort, Type: d.Type, OccurredAt: d.OccurredAt, SignedAt: d.SignedAt,
			Payload: d.Body, Headers: rc.storable(src, d.Header), Status: StatusRejected, Reason: cause.Error(),
		})
		return err
	})
	if err != nil {
		err = rc.timedOut(ctx, err)
		rc.recordFailure(db, src.Name, d.ID, FailureFailed, err.Error(), http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable, "failed", err.Error()
	}
	if !rej.New && rej.Status != StatusRejected {
		// A concurrent delivery of the same event processed it while this
		// one was failing: its effects committed, so the answer is the
		// duplicate's.
		return http.StatusOK, "duplicate", ""
	}
	rc.recordFailure(db, src.Name, d.ID, FailureRejected, cause.Error(), http.StatusUnprocessableEntity)
	return http.StatusUnprocessableEntity, "rejected", cause.Error()
}

// permanent reports whether retrying err can never help: marked Permanent,
// an event the inbox cannot store, or (unless marked Transient) a
// PostgreSQL data exception (class 22: NUL or invalid UTF-8 in text, a
// value out of range...), program limit (54000: a value too large for an
// index) or message the outbox refuses for its data (outbox.ErrUnstorable:
// a field over its bound, the same limits checked first, or text it cannot
// store) that the same payload raises on every retry.
func permanent(err error) bool {
	if IsPermanent(err) || errors.Is(err, ErrInvalidEvent) {
		return true
	}
	var tr *transientError
	if errors.As(err, &tr) {
		return false // the handler said so
	}
	if errors.Is(err, outbox.ErrUnstorable) {
		return true
	}
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "22") || pg.Code == "54000")
}

type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", p.v) }

// inTx runs fn in a transaction on db; a panic in fn rolls back and
// becomes an error.
func (rc *Receiver) inTx(ctx context.Context, db ReceiverDB, fn func(pgx.Tx) error) (err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if v := recover(); v != nil {
			_ = rollback(ctx, tx)
			err = &panicError{v: v}
		}
	}()
	if err := fn(tx); err != nil {
		// Closed already: the handler committed (or rolled back) itself,
		// then failed, or returned the closed transaction's error.
		if rerr := rollback(ctx, tx); errors.Is(rerr, pgx.ErrTxClosed) || errors.Is(err, pgx.ErrTxClosed) {
			return fmt.Errorf("%w: %w", errTxClosed, err)
		}
		return err
	}
	// COMMIT is not cut by the receipt's deadline: cut, its outcome would
	// be unknown, and a receipt that committed answered 503.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endBudget)
	defer cancel()
	if err := tx.Commit(cctx); errors.Is(err, pgx.ErrTxClosed) {
		return errTxClosed
	} else if err != nil {
		return err
	}
	return nil
}

// endBudget bounds a receipt's COMMIT or ROLLBACK, which run past its
// context (ReceiverConfig.Timeout, a client gone): a database that stopped
// answering would hold them until TCP gives up.
const endBudget = 2 * time.Second

// rollback ends tx within endBudget, whatever ctx's state.
func rollback(ctx context.Context, tx pgx.Tx) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endBudget)
	defer cancel()
	return tx.Rollback(rctx)
}

// recordFailure notes a failed or rejected receipt for operators, under the
// event's storage key (long ids by hash), through db (the receipt's
// connection, or the pool once that connection broke). It is best-effort:
// when the database is what failed, the log line remains.
func (rc *Receiver) recordFailure(db ReceiverDB, source, eventID string, kind FailureKind, reason string, code int) {
	if c, ok := db.(*pgxpool.Conn); ok && c.Conn().IsClosed() {
		// Broken (cancelled at the deadline, its session ended): its slot
		// goes back first, or the row waits for a connection of a full
		// pool. The receipt's own release does nothing after this.
		c.Release()
		db = rc.pool
	}
	rc.cfg.Metrics.count(source, string(kind))
	key := storageKey(truncate(eventID, len(eventID)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := db.Exec(ctx, rc.failSQL, source, key, string(kind), truncate(reason, 1000), code); err != nil {
		rc.log.Warn("could not record a failed receipt", "source", source, "event_id", truncate(key, logMax), "error", truncate(err.Error(), logMax))
	}
}

// truncate makes s storable and loggable: no NUL, valid UTF-8, at most n
// bytes.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "?")
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// storable drops the source's own signature headers (the inbox's redaction
// drops the rest of what it must not store).
func (rc *Receiver) storable(src *Source, h http.Header) http.Header {
	names := rc.sigHeaders[src.Name]
	if len(names) == 0 {
		return h
	}
	out := h.Clone()
	for _, n := range names {
		out.Del(n)
	}
	return out
}
