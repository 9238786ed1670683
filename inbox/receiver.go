package inbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/inbox/verify"
)

// DefaultMaxBody is the largest body a source accepts unless configured.
const DefaultMaxBody = 1 << 20

// HandlerFunc does an event's work inside tx, the transaction that recorded
// it: business writes, outbox enqueues. Return Permanent(err) for an event
// that can never be processed (422), Transient(err) or any other error to
// have the sender retry (503). The effects commit together with the inbox
// record, or not at all.
type HandlerFunc func(ctx context.Context, tx pgx.Tx, d *Delivery) error

// Delivery is one verified webhook, new inside the dedupe window.
type Delivery struct {
	Source     string
	ID         string
	BestEffort bool
	Type       string
	OccurredAt time.Time
	Body       []byte
	Header     http.Header
	// Inbox recorded the event; handlers use it to add search references
	// (d.Inbox.AddRefs(ctx, tx, d.Source, d.ID, ...)).
	Inbox *Inbox
}

// Source is one sender the receiver accepts.
type Source struct {
	// Name is the source's name in the inbox and in the URL (/{name}).
	Name string
	// Verifier authenticates its requests. Required.
	Verifier verify.Verifier
	// Handle does the work of a new event. Required.
	Handle HandlerFunc
	// MaxBody bounds the request body (413 beyond). Default 1 MiB.
	MaxBody int64
	// Async answers 200 as soon as the event and a River job to process it
	// are committed; the job runs Handle later (see AsyncWorker).
	Async bool
}

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	Sources []Source
	// RetryAfter is sent with 503 answers. Default 5 s.
	RetryAfter time.Duration
	// Metrics, when set, is updated for every request (NewMetrics).
	Metrics *Metrics
	// Logger: default slog.Default().
	Logger *slog.Logger
	// Now is the clock for timestamp tolerances. Default time.Now.
	Now func() time.Time
	// River inserts the jobs of async sources, in the receipt transaction.
	// Required when a source is Async; its Schema must be the inbox's.
	River *river.Client[pgx.Tx]
}

// Receiver is an http.Handler for webhooks from several sources, routed by
// the last path segment (/webhooks/stripe goes to the source "stripe"), or
// one source's handler (For).
type Receiver struct {
	pool    *pgxpool.Pool
	inbox   *Inbox
	cfg     ReceiverConfig
	sources map[string]*Source
	log     *slog.Logger
	failSQL string
}

// NewReceiver returns a Receiver that records events with in, in pool.
func NewReceiver(pool *pgxpool.Pool, in *Inbox, cfg ReceiverConfig) (*Receiver, error) {
	if pool == nil || in == nil {
		return nil, errors.New("inbox: NewReceiver needs a pool and an Inbox")
	}
	rc := &Receiver{pool: pool, inbox: in, cfg: cfg, sources: map[string]*Source{}, failSQL: in.render(recordFailureSQL)}
	if rc.cfg.RetryAfter == 0 {
		rc.cfg.RetryAfter = 5 * time.Second
	}
	if rc.cfg.Now == nil {
		rc.cfg.Now = time.Now
	}
	rc.log = cfg.Logger
	if rc.log == nil {
		rc.log = slog.Default()
	}
	rc.log = rc.log.With("component", "outboxd.inbox")
	for i := range cfg.Sources {
		s := cfg.Sources[i]
		switch {
		case s.Name == "" || strings.Contains(s.Name, "/"):
			return nil, fmt.Errorf("inbox: source %d: a name without '/' is required", i)
		case s.Verifier == nil:
			return nil, fmt.Errorf("inbox: source %s: Verifier is required", s.Name)
		case s.Handle == nil:
			return nil, fmt.Errorf("inbox: source %s: Handle is required", s.Name)
		case rc.sources[s.Name] != nil:
			return nil, fmt.Errorf("inbox: source %s configured twice", s.Name)
		}
		if s.Async && cfg.River == nil {
			return nil, fmt.Errorf("inbox: source %s is async: ReceiverConfig.River is required", s.Name)
		}
		if s.MaxBody == 0 {
			s.MaxBody = DefaultMaxBody
		}
		rc.sources[s.Name] = &s
	}
	return rc, nil
}

// ServeHTTP routes by the last path segment.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	src := rc.sources[name]
	if src == nil {
		rc.cfg.Metrics.count(name, "unknown_source")
		answer(w, http.StatusNotFound, "unknown source", nil)
		return
	}
	rc.serve(w, r, src)
}

// For returns the handler of one source, for routers that route themselves.
func (rc *Receiver) For(source string) http.Handler {
	src := rc.sources[source]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if src == nil {
			answer(w, http.StatusNotFound, "unknown source", nil)
			return
		}
		rc.serve(w, r, src)
	})
}

func answer(w http.ResponseWriter, code int, status string, extra map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	for k, v := range extra {
		w.Header().Set(k, v)
	}
	w.WriteHeader(code)
	body := map[string]string{"status": status}
	_ = json.NewEncoder(w).Encode(body)
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request, src *Source) {
	if r.Method != http.MethodPost {
		answer(w, http.StatusMethodNotAllowed, "POST only", map[string]string{"Allow": http.MethodPost})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, src.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rc.cfg.Metrics.count(src.Name, "too_large")
			answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", src.MaxBody), nil)
			return
		}
		answer(w, http.StatusBadRequest, "could not read body", nil)
		return
	}
	meta, err := src.Verifier.Verify(r, body, rc.cfg.Now())
	if errors.Is(err, verify.ErrPayload) {
		rc.reject(r.Context(), w, src, body, r.Header, err)
		return
	}
	if err != nil {
		// Nothing is written for an unauthenticated request: a counter
		// and a log line, so a flood cannot fill the database.
		rc.cfg.Metrics.count(src.Name, "bad_signature")
		rc.log.Warn("webhook rejected: verification failed", "source", src.Name, "reason", err.Error(), "remote", r.RemoteAddr)
		answer(w, http.StatusUnauthorized, "verification failed", nil)
		return
	}
	d := &Delivery{Source: src.Name, ID: meta.ID, Type: meta.Type, OccurredAt: meta.Timestamp, Body: body, Header: r.Header, Inbox: rc.inbox}
	extra := map[string]string{}
	if d.ID == "" {
		d.ID, d.BestEffort = bestEffortID(meta, body), true
		extra["X-Outboxd-Dedupe"] = "best-effort"
	}
	code, status, reason := rc.process(r.Context(), src, d)
	if code == http.StatusServiceUnavailable {
		extra["Retry-After"] = strconv.Itoa(int(rc.cfg.RetryAfter.Seconds()))
	}
	if reason != "" {
		rc.log.Warn("webhook not processed", "source", src.Name, "event_id", d.ID, "status", code, "reason", reason)
	}
	answer(w, code, status, extra)
}

// reject answers 422 for an authentic but malformed payload, and keeps it
// as a rejected event (under an id derived from the body) so operators see
// it and a retry is a duplicate.
func (rc *Receiver) reject(ctx context.Context, w http.ResponseWriter, src *Source, body []byte, h http.Header, cause error) {
	id := bestEffortID(verify.Meta{}, body)
	err := rc.inTx(ctx, func(tx pgx.Tx) error {
		_, err := rc.inbox.Record(ctx, tx, Event{Source: src.Name, ID: id, BestEffort: true, Payload: body, Headers: h,
			Status: StatusRejected, Reason: truncate(cause.Error(), 1000)})
		return err
	})
	if err != nil {
		rc.recordFailure(src.Name, id, "failed", err.Error(), http.StatusServiceUnavailable)
		answer(w, http.StatusServiceUnavailable, "failed", map[string]string{"Retry-After": strconv.Itoa(int(rc.cfg.RetryAfter.Seconds()))})
		return
	}
	rc.recordFailure(src.Name, id, "rejected", cause.Error(), http.StatusUnprocessableEntity)
	rc.log.Warn("webhook rejected: malformed payload", "source", src.Name, "event_id", id, "reason", cause.Error())
	answer(w, http.StatusUnprocessableEntity, "rejected", nil)
}

// bestEffortID derives an id from (timestamp, type, subject) when the
// sender gives none; with none of those either, from the body.
func bestEffortID(m verify.Meta, body []byte) string {
	h := sha256.New()
	if m.Timestamp.IsZero() && m.Type == "" && m.Subject == "" {
		h.Write(body)
	} else {
		fmt.Fprintf(h, "%d\x00%s\x00%s", m.Timestamp.UnixNano(), m.Type, m.Subject)
	}
	return "derived-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// process runs the receipt transaction and says how to answer.
func (rc *Receiver) process(ctx context.Context, src *Source, d *Delivery) (code int, status, reason string) {
	start := time.Now()
	defer func() {
		rc.cfg.Metrics.observe(src.Name, status, time.Since(start))
	}()
	var res Result
	err := rc.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		status := StatusProcessed
		if src.Async {
			status = StatusReceived
		}
		res, err = rc.inbox.Record(ctx, tx, Event{
			Source: src.Name, ID: d.ID, BestEffort: d.BestEffort, Type: d.Type,
			OccurredAt: d.OccurredAt, Payload: d.Body, Headers: d.Header, Status: status,
		})
		if err != nil || !res.New {
			return err
		}
		if src.Async {
			return rc.enqueueAsync(ctx, tx, d)
		}
		return src.Handle(ctx, tx, d)
	})
	switch {
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
		rc.recordFailure(src.Name, d.ID, "panic", err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError, "failed", err.Error()
	case IsPermanent(err):
		// Keep the event as rejected: operators see it, retries are
		// duplicates.
		var rej Result
		rejErr := rc.inTx(ctx, func(tx pgx.Tx) error {
			var err2 error
			rej, err2 = rc.inbox.Record(ctx, tx, Event{
				Source: src.Name, ID: d.ID, BestEffort: d.BestEffort, Type: d.Type, OccurredAt: d.OccurredAt,
				Payload: d.Body, Headers: d.Header, Status: StatusRejected, Reason: truncate(err.Error(), 1000),
			})
			return err2
		})
		if rejErr != nil {
			rc.recordFailure(src.Name, d.ID, "failed", rejErr.Error(), http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable, "failed", rejErr.Error()
		}
		if !rej.New && rej.Status != StatusRejected {
			// A concurrent delivery of the same event processed it while
			// this one was failing: its effects committed, so the answer
			// is the duplicate's.
			return http.StatusOK, "duplicate", ""
		}
		rc.recordFailure(src.Name, d.ID, "rejected", err.Error(), http.StatusUnprocessableEntity)
		return http.StatusUnprocessableEntity, "rejected", err.Error()
	default:
		rc.recordFailure(src.Name, d.ID, "failed", err.Error(), http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable, "failed", err.Error()
	}
}

type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", p.v) }

// inTx runs fn in a transaction; a panic in fn rolls back and becomes an
// error.
func (rc *Receiver) inTx(ctx context.Context, fn func(pgx.Tx) error) (err error) {
	tx, err := rc.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			err = &panicError{v: v}
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

// recordFailure notes a failed or rejected receipt for operators. It is
// best-effort: when the database is what failed, the log line remains.
func (rc *Receiver) recordFailure(source, eventID, kind, reason string, code int) {
	rc.cfg.Metrics.count(source, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := rc.pool.Exec(ctx, rc.failSQL, source, eventID, kind, truncate(reason, 1000), code); err != nil {
		rc.log.Warn("could not record a failed receipt", "source", source, "event_id", eventID, "error", err)
	}
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "?")
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return s
}
