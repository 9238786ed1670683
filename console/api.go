package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/httpheader"
	"github.com/outboxd/outboxd/outbox"
)

// apiFunc answers with a value to encode as JSON, or an error.
type apiFunc func(r *http.Request) (any, error)

// api encodes the answer, or {"error": "..."} with the status page() would
// use.
func (c *Console) api(fn apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		code := http.StatusOK
		if err != nil {
			var msg string
			code, msg = c.classify(r, err)
			v = map[string]string{"error": msg}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
}

// Body is a payload or response body in the API: text when it is valid
// UTF-8 (JSON included), else base64; its first MaxShown bytes (64 KiB by
// default, as on the pages), Truncated when there was more. Size is the
// whole body's.
type Body struct {
	Text      *string `json:"text,omitempty"`      // the body, when valid UTF-8
	Base64    []byte  `json:"base64,omitempty"`    // the body otherwise
	Size      int     `json:"size"`                // the whole body's size in bytes
	Truncated bool    `json:"truncated,omitempty"` // more than MaxShown bytes
}

func body(b []byte, maxShown int) Body {
	size, cut := len(b), false
	if len(b) > maxShown {
		b, cut = b[:maxShown], true
	}
	if utf8.Valid(b) || (cut && utf8.Valid(trimPartialRune(b))) {
		s := string(trimPartialRune(b))
		if !cut {
			s = string(b)
		}
		return Body{Text: &s, Size: size, Truncated: cut}
	}
	return Body{Base64: b, Size: size, Truncated: cut}
}

// trimPartialRune drops a character cut in two at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// apiEvent is an inbox event in the API.
type apiEvent struct {
	Source         string            `json:"source"`
	ID             string            `json:"id"`
	BestEffort     bool              `json:"best_effort"`
	Type           string            `json:"type"`
	OccurredAt     *time.Time        `json:"occurred_at,omitempty"`
	SignedAt       *time.Time        `json:"signed_at,omitempty"`
	ReceivedAt     time.Time         `json:"received_at"`
	LastSeenAt     time.Time         `json:"last_seen_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	DuplicateCount int               `json:"duplicate_count"`
	Status         string            `json:"status"`
	Reason         string            `json:"reason,omitempty"`
	ProcessedAt    *time.Time        `json:"processed_at,omitempty"`
	Headers        http.Header       `json:"headers"`
	Refs           map[string]string `json:"refs"`
	Payload        Body              `json:"payload"`
}

type apiFailure struct {
	Source     string            `json:"source"`
	EventID    string            `json:"event_id"`
	Kind       inbox.FailureKind `json:"kind"`
	Reason     string            `json:"reason"`
	StatusCode int               `json:"status_code"`
	FirstAt    time.Time         `json:"first_at"`
	LastAt     time.Time         `json:"last_at"`
	Count      int               `json:"count"`
}

func failuresOut(fs []inbox.Failure) []apiFailure {
	out := make([]apiFailure, len(fs))
	for i, f := range fs {
		out[i] = apiFailure(f)
	}
	return out
}

type apiAttempt struct {
	Number       int            `json:"number"`
	At           time.Time      `json:"at"`
	DurationMS   float64        `json:"duration_ms"`
	Outcome      outbox.Outcome `json:"outcome"`
	StatusCode   *int           `json:"status_code,omitempty"`
	Error        string         `json:"error,omitempty"`
	ResponseBody Body           `json:"response_body"`
	Dispatcher   string         `json:"dispatcher"`
}

func (c *Console) apiSession(r *http.Request) (any, error) {
	p := principalOf(r.Context())
	return map[string]string{"user": p.Name, "role": string(p.Role), "csrf_token": c.csrf.token(p)}, nil
}

func (c *Console) apiEvents(r *http.Request) (any, error) {
	f, err := eventFilter(r.URL.Query(), time.Now())
	if err != nil {
		return nil, badRequest(err)
	}
	rows, err := c.store.events(r.Context(), f)
	return map[string]any{"events": nonNil(rows), "limit": c.cfg.PageSize}, err
}

func (c *Console) apiEvent(r *http.Request) (any, error) {
	d, err := c.store.event(r.Context(), r.PathValue("source"), r.PathValue("id"))
	if err != nil {
		return nil, wrapNotFound("event", err)
	}
	e := d.Event
	return map[string]any{
		"event": apiEvent{Source: e.Source, ID: e.ID, BestEffort: e.BestEffort, Type: e.Type, OccurredAt: e.OccurredAt,
			SignedAt: e.SignedAt, ReceivedAt: e.ReceivedAt, LastSeenAt: e.LastSeenAt, ExpiresAt: e.ExpiresAt,
			DuplicateCount: e.DuplicateCount, Status: string(e.Status), Reason: e.Reason, ProcessedAt: e.ProcessedAt,
			Headers: httpheader.Redacted(e.Headers), Refs: e.Refs, Payload: body(e.Payload, c.cfg.MaxShown)},
		"failures": failuresOut(d.Failures),
		"messages": nonNil(d.Messages),
	}, nil
}

func (c *Console) apiMessages(r *http.Request) (any, error) {
	f, err := messageFilter(r.URL.Query(), time.Now())
	if err != nil {
		return nil, badRequest(err)
	}
	rows, err := c.store.messages(r.Context(), f)
	return map[string]any{"messages": nonNil(rows), "limit": c.cfg.PageSize}, err
}

func (c *Console) apiDead(r *http.Request) (any, error) {
	q := r.URL.Query()
	q.Set("status", "dead")
	f, err := messageFilter(q, time.Now())
	if err != nil {
		return nil, badRequest(err)
	}
	rows, err := c.store.messages(r.Context(), f)
	return map[string]any{"messages": nonNil(rows), "limit": c.cfg.PageSize}, err
}

func (c *Console) apiMessage(r *http.Request) (any, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return nil, badRequest(fmt.Errorf("%q is not a message id", r.PathValue("id")))
	}
	d, err := c.store.message(r.Context(), id)
	if err != nil {
		return nil, wrapNotFound("message", err)
	}
	att := make([]apiAttempt, len(d.Attempts))
	for i, a := range d.Attempts {
		att[i] = apiAttempt{Number: a.Number, At: a.At, DurationMS: float64(a.Duration) / float64(time.Millisecond),
			Outcome: a.Outcome, StatusCode: a.StatusCode, Error: a.Error, ResponseBody: body([]byte(a.ResponseBody), c.cfg.MaxShown), Dispatcher: a.Dispatcher}
	}
	var cause *outbox.EventRef
	if d.Message.CausedBy != nil {
		cause = d.Message.CausedBy
	}
	return map[string]any{
		"message": d.Summary, "payload": body(d.Message.Payload, c.cfg.MaxShown), "headers": d.Message.Headers,
		"step": d.Message.Step, "caused_by": cause, "attempts": att, "audit": nonNil(d.Audit),
	}, nil
}

// apiDeadAction requeues or purges. The body is a DeadSelection; with
// "dry_run": true it only counts. "expect" makes it all-or-nothing against
// a count seen before.
func (c *Console) apiDeadAction(r *http.Request) (any, error) {
	action := r.PathValue("action")
	if action != "requeue" && action != "purge" {
		return nil, errNotFound
	}
	var req struct {
		DeadSelection
		DryRun bool `json:"dry_run"`
	}
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if err := checkWindow(req.Since, req.Until); err != nil {
		return nil, badRequest(err)
	}
	if req.empty() {
		return nil, badRequest(errors.New("nothing selected: give ids, a filter (destination, type, ordering_key, idempotency_key, since, until), or \"all\": true"))
	}
	if req.DryRun {
		n, digest, err := c.store.deadNow(r.Context(), req.DeadSelection)
		return map[string]any{"action": action, "dry_run": true, "count": n, "digest": digest}, err
	}
	n, err := c.store.changeDead(r.Context(), principalOf(r.Context()), action, req.DeadSelection, c.cfg.AuditIDs)
	return map[string]any{"action": action, "count": n}, err
}

func (c *Console) apiDestinations(r *http.Request) (any, error) {
	return c.store.destinations(r.Context())
}

func (c *Console) apiPauseAction(r *http.Request) (any, error) {
	name, action := r.PathValue("name"), r.PathValue("action")
	if action != "pause" && action != "resume" {
		return nil, errNotFound
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
	}
	changed, err := c.store.setPaused(r.Context(), principalOf(r.Context()), name, action == "pause", req.Reason)
	return map[string]any{"destination": name, "action": action, "changed": changed}, err
}

func (c *Console) apiFailures(r *http.Request) (any, error) {
	q := r.URL.Query()
	f, err := c.store.failures(r.Context(), q.Get("source"), q.Get("kind"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"groups": nonNil(f.Groups), "recent": failuresOut(f.Recent)}, nil
}

func (c *Console) apiAudit(r *http.Request) (any, error) {
	a, err := c.store.auditRecent(r.Context())
	return map[string]any{"audit": nonNil(a)}, err
}

// nonNil makes an empty list [] in JSON, not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// decodeBody reads one JSON object into v: unknown fields, a second value
// or anything after it are refused, and errors name the field and what it
// wants, never a Go type.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return badRequest(errors.New("body: trailing data after the JSON object"))
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &typeErr):
		return badRequest(fmt.Errorf("body: %s: a JSON %s is not what it takes", typeErr.Field, typeErr.Value))
	case errors.As(err, &syntaxErr):
		return badRequest(fmt.Errorf("body: not valid JSON (at byte %d)", syntaxErr.Offset))
	case errors.As(err, &tooBig):
		return badRequest(fmt.Errorf("body: over %d bytes", tooBig.Limit))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(errors.New("body: want a JSON object"))
	}
	// Unknown fields, and a field's own parser (a time, an id).
	return badRequest(fmt.Errorf("body: %s", strings.TrimPrefix(err.Error(), "json: ")))
}
