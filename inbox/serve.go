package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox/verify"
)

// ServeHTTP routes by the last path segment. A segment that is a dot
// segment or holds an encoded slash names no source (404), whatever it
// decodes to: "/webhooks/..%2fforms" must not reach "forms".
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := rc.sources[sourceName(r.URL)]
	if src == nil {
		// One fixed label: the path is the caller's, and a label per path
		// would let anyone grow the metrics without bound.
		rc.cfg.Metrics.count("unknown", "unknown_source")
		answer(w, http.StatusNotFound, "unknown source", nil)
		return
	}
	rc.serve(w, r, src)
}

// sourceName is the decoded last path segment, or "" when any segment is
// "." or "..", or the last one holds an encoded "/" or "\".
func sourceName(u *url.URL) string {
	segs := strings.Split(u.EscapedPath(), "/")
	for i, seg := range segs {
		name, err := url.PathUnescape(seg)
		if err != nil || name == "." || name == ".." {
			return ""
		}
		if i == len(segs)-1 {
			if strings.ContainsAny(name, "/\\") {
				return ""
			}
			return name
		}
	}
	return ""
}

// For returns the handler of one source, for routers that route themselves.
// A source the receiver was not configured with is an error wrapping
// ErrUnknownSource, at wiring time, rather than a handler that answers 404
// forever; it lists the configured sources, to make a typo plain.
func (rc *Receiver) For(source string) (http.Handler, error) {
	src := rc.sources[source]
	if src == nil {
		names := strings.Join(slices.Sorted(maps.Keys(rc.sources)), ", ")
		return nil, fmt.Errorf("%w %q (sources: %s)", ErrUnknownSource, source, names)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rc.serve(w, r, src) }), nil
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

func (rc *Receiver) retryAfter() map[string]string {
	// Whole seconds, rounded up: never a retry sooner than configured.
	secs := rc.cfg.RetryAfter / time.Second
	if rc.cfg.RetryAfter%time.Second != 0 {
		secs++
	}
	return map[string]string{"Retry-After": strconv.FormatInt(int64(secs), 10)}
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request, src *Source) {
	if r.Method != http.MethodPost {
		rc.cfg.Metrics.count(src.Name, "wrong_method")
		answer(w, http.StatusMethodNotAllowed, "POST only", map[string]string{"Allow": http.MethodPost})
		return
	}
	if r.ContentLength > src.MaxBody {
		// Announced too large: no reason to wait for it.
		rc.tooLarge(w, src)
		return
	}
	select {
	case rc.slots <- struct{}{}:
		defer func() { <-rc.slots }()
	default:
		rc.cfg.Metrics.count(src.Name, "overloaded")
		answer(w, http.StatusServiceUnavailable, "overloaded", rc.retryAfter())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, src.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rc.tooLarge(w, src)
			return
		}
		// Cut off, or read past the server's ReadTimeout: the event was
		// not processed, so the answer says to try again (a 4xx says
		// never to), if anyone still reads it.
		rc.cfg.Metrics.count(src.Name, "unreadable")
		answer(w, http.StatusServiceUnavailable, "could not read body", rc.retryAfter())
		return
	}
	ctx, cancel := rc.receiptContext(r.Context())
	defer cancel()
	rc.verified(ctx, w, r, src, body)
}

// receiptContext bounds a receipt by ReceiverConfig.Timeout.
func (rc *Receiver) receiptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if rc.cfg.Timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, rc.cfg.Timeout)
}

// verified verifies a request whose body is read, and runs its receipt
// in ctx.
func (rc *Receiver) verified(ctx context.Context, w http.ResponseWriter, r *http.Request, src *Source, body []byte) {
	meta, err := src.Verifier.Verify(r, body, rc.cfg.Now())
	if errors.Is(err, verify.ErrPayload) {
		rc.reject(ctx, w, src, body, r.Header, err)
		return
	}
	if err != nil {
		// Nothing is written for an unauthenticated request: a counter
		// and a log line per source per 10 s that counts the others (cut
		// short: the reason may echo a header), so a flood cannot fill
		// the database or the logs.
		rc.cfg.Metrics.count(src.Name, "bad_signature")
		if ok, held := rc.logs.Allow(src.Name); ok {
			rc.log.Warn("webhook rejected: verification failed", "source", src.Name, "reason", truncate(err.Error(), logMax),
				"remote", r.RemoteAddr, "similar_lines_left_out", held)
		}
		answer(w, http.StatusUnauthorized, "verification failed", nil)
		return
	}
	for what, s := range map[string]string{"event id": meta.ID, "event type": meta.Type} {
		if err := checkText(what, s); err != nil {
			rc.reject(ctx, w, src, body, r.Header, err)
			return
		}
	}
	if meta.Challenge != "" { // an authentic handshake, not an event
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"challenge": meta.Challenge})
		return
	}
	// A JSON decoder turns invalid UTF-8 and lone surrogates in a body's id
	// into U+FFFD, so two different ids would become one: refuse them.
	if strings.ContainsRune(meta.ID, utf8.RuneError) {
		rc.reject(ctx, w, src, body, r.Header, fmt.Errorf("%w: event id holds invalid UTF-8 or an unpaired surrogate", ErrInvalidEvent))
		return
	}
	d := &Delivery{Source: src.Name, ID: meta.ID, Type: meta.Type, OccurredAt: meta.OccurredAt, SignedAt: meta.Timestamp,
		Body: body, Header: r.Header, inbox: rc.inbox}
	extra := map[string]string{}
	if d.ID == "" {
		d.ID, d.BestEffort = BodyID(body), true
		extra["X-Outboxd-Dedupe"] = "best-effort"
	}
	bodyKey := ""
	if src.BodyDedupe == BodyDedupeOn || (src.BodyDedupe == BodyDedupeAuto && meta.BodyUnique) {
		bodyKey = bodyDedupeKey(meta.BodyKeyType, body)
	}
	code, status, reason := rc.process(ctx, src, d, bodyKey)
	if code == http.StatusServiceUnavailable {
		extra["Retry-After"] = rc.retryAfter()["Retry-After"]
	}
	if reason != "" {
		rc.log.Warn("webhook not processed", "source", src.Name, "event_id", truncate(d.ID, logMax), "status", code, "reason", truncate(reason, logMax))
	}
	answer(w, code, status, extra)
}

func (rc *Receiver) tooLarge(w http.ResponseWriter, src *Source) {
	rc.cfg.Metrics.count(src.Name, "too_large")
	answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", src.MaxBody), nil)
}

// reject answers 422 for an authentic but malformed payload (or id), and
// keeps it as a rejected event under rejectedID, so operators see it and
// every retry gets the same answer.
func (rc *Receiver) reject(ctx context.Context, w http.ResponseWriter, src *Source, body []byte, h http.Header, cause error) {
	id := rejectedID(body)
	db, release, err := rc.receiptDB(ctx)
	if err != nil {
		rc.recordFailure(rc.pool, src.Name, id, FailureFailed, err.Error(), http.StatusServiceUnavailable)
		answer(w, http.StatusServiceUnavailable, "failed", rc.retryAfter())
		return
	}
	defer release()
	err = rc.inTx(ctx, db, func(tx pgx.Tx) error {
		_, err := rc.inbox.Record(ctx, tx, Event{Source: src.Name, ID: id, BestEffort: true, Payload: body, Headers: rc.storable(src, h),
			Status: StatusRejected, Reason: cause.Error()})
		return err
	})
	if err != nil {
		rc.recordFailure(db, src.Name, id, FailureFailed, err.Error(), http.StatusServiceUnavailable)
		answer(w, http.StatusServiceUnavailable, "failed", rc.retryAfter())
		return
	}
	rc.recordFailure(db, src.Name, id, FailureRejected, cause.Error(), http.StatusUnprocessableEntity)
	rc.log.Warn("webhook rejected: malformed payload", "source", src.Name, "event_id", id, "reason", truncate(cause.Error(), logMax))
	answer(w, http.StatusUnprocessableEntity, "rejected", nil)
}
