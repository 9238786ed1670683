package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/httpheader"
	"github.com/outboxd/outboxd/outbox"
)

// The --json output of the list and show commands. Field names are stable
// (docs/operations.md lists them): add fields, never rename one. The values
// are the stored ones, as the text output shows them (secrets were never
// stored), uncut: a script wants the whole payload.

// jsonFlagHelp is --json's help on every command that has it.
const jsonFlagHelp = "print JSON instead of a table (field names in docs/operations.md)"

// payloadJSON holds a body: exactly one of its fields is set. Payload is the
// body itself when it is JSON, PayloadText when it is other UTF-8 text,
// PayloadBase64 when it is binary. A body that is JSON's null is given as
// text: "payload": null would read like an absent value.
type payloadJSON struct {
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadText   *string         `json:"payload_text,omitempty"`
	PayloadBase64 *string         `json:"payload_base64,omitempty"`
}

func newPayloadJSON(b []byte) payloadJSON {
	switch {
	case len(b) > 0 && utf8.Valid(b) && json.Valid(b) && string(bytes.TrimSpace(b)) != "null":
		return payloadJSON{Payload: b}
	case utf8.Valid(b):
		s := string(b)
		return payloadJSON{PayloadText: &s}
	default:
		s := base64.StdEncoding.EncodeToString(b)
		return payloadJSON{PayloadBase64: &s}
	}
}

type eventRefJSON struct {
	Source  string `json:"source"`
	EventID string `json:"event_id"`
}

type attemptJSON struct {
	Number       int       `json:"number"`
	At           time.Time `json:"at"`
	DurationMS   float64   `json:"duration_ms"`
	Outcome      string    `json:"outcome"`
	StatusCode   *int      `json:"status_code"`
	Error        string    `json:"error"`
	ResponseBody string    `json:"response_body"`
	Dispatcher   string    `json:"dispatcher"`
}

// messageJSON is a message of outbox dead and outbox show.
type messageJSON struct {
	ID             string        `json:"id"`
	Destination    string        `json:"destination"`
	Type           string        `json:"type"`
	Status         string        `json:"status"`
	IdempotencyKey string        `json:"idempotency_key"`
	OrderingKey    *string       `json:"ordering_key"`
	Seq            *int64        `json:"seq"`
	CausedBy       *eventRefJSON `json:"caused_by"`
	Step           string        `json:"step"`
	CreatedAt      time.Time     `json:"created_at"`
	AttemptCount   int           `json:"attempt_count"`
	NextAttemptAt  *time.Time    `json:"next_attempt_at"`
	DeliveredAt    *time.Time    `json:"delivered_at"`
	LastError      string        `json:"last_error"`
	LastStatusCode *int          `json:"last_status_code"`
	Headers        http.Header   `json:"headers"`
	payloadJSON
}

func newMessageJSON(m outbox.Stored) messageJSON {
	j := messageJSON{ID: m.ID.String(), Destination: m.Destination, Type: m.Type, Status: string(m.Status),
		IdempotencyKey: m.IdempotencyKey, Step: m.Step, CreatedAt: m.CreatedAt.UTC(), AttemptCount: m.Attempts,
		DeliveredAt: utcPtr(m.DeliveredAt), LastError: m.LastError, LastStatusCode: m.LastStatusCode,
		Headers: nonNilHeader(httpheader.Redacted(m.Headers)), payloadJSON: newPayloadJSON(m.Payload)}
	if m.OrderingKey != "" {
		j.OrderingKey, j.Seq = &m.OrderingKey, &m.Seq
	}
	if m.CausedBy != nil {
		j.CausedBy = &eventRefJSON{Source: m.CausedBy.Source, EventID: m.CausedBy.EventID}
	}
	// As in the text: only a pending message has a next attempt.
	if m.Status == outbox.StatusPending {
		j.NextAttemptAt = utcPtr(&m.NextAttemptAt)
	}
	return j
}

// shownMessageJSON is outbox show's object: the message and its attempts.
type shownMessageJSON struct {
	messageJSON
	Attempts []attemptJSON `json:"attempts"`
}

func newShownMessageJSON(m outbox.Stored, attempts []outbox.Attempt) shownMessageJSON {
	return shownMessageJSON{messageJSON: newMessageJSON(m), Attempts: jsonList(attempts, func(a outbox.Attempt) attemptJSON {
		return attemptJSON{Number: a.Number, At: a.At.UTC(), DurationMS: float64(a.Duration) / float64(time.Millisecond),
			Outcome: string(a.Outcome), StatusCode: a.StatusCode, Error: a.Error, ResponseBody: a.ResponseBody, Dispatcher: a.Dispatcher}
	})}
}

// eventJSON is an event of inbox show and inbox find.
type eventJSON struct {
	Source         string            `json:"source"`
	EventID        string            `json:"event_id"`
	StoredID       string            `json:"stored_id"` // as indexed: a message's caused_by.event_id
	BestEffortID   bool              `json:"best_effort_id"`
	Type           string            `json:"type"`
	Status         string            `json:"status"`
	Reason         string            `json:"reason"`
	OccurredAt     *time.Time        `json:"occurred_at"`
	SignedAt       *time.Time        `json:"signed_at"`
	ReceivedAt     time.Time         `json:"received_at"`
	LastSeenAt     time.Time         `json:"last_seen_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	ProcessedAt    *time.Time        `json:"processed_at"`
	DuplicateCount int               `json:"duplicate_count"`
	Refs           map[string]string `json:"refs"`
	Headers        http.Header       `json:"headers"`
	payloadJSON
}

func newEventJSON(ev inbox.Stored) eventJSON {
	refs := ev.Refs
	if refs == nil {
		refs = map[string]string{}
	}
	return eventJSON{Source: ev.Source, EventID: ev.ID, StoredID: ev.StoredID, BestEffortID: ev.BestEffort, Type: ev.Type,
		Status: string(ev.Status), Reason: ev.Reason, OccurredAt: utcPtr(ev.OccurredAt), SignedAt: utcPtr(ev.SignedAt),
		ReceivedAt: ev.ReceivedAt.UTC(), LastSeenAt: ev.LastSeenAt.UTC(), ExpiresAt: ev.ExpiresAt.UTC(),
		ProcessedAt: utcPtr(ev.ProcessedAt), DuplicateCount: ev.DuplicateCount, Refs: refs,
		Headers: nonNilHeader(httpheader.Redacted(ev.Headers)), payloadJSON: newPayloadJSON(ev.Payload)}
}

// failureJSON is a row of inbox failures.
type failureJSON struct {
	Source     string            `json:"source"`
	EventID    string            `json:"event_id"`
	Kind       inbox.FailureKind `json:"kind"`
	StatusCode int               `json:"status_code"`
	Count      int               `json:"count"`
	FirstAt    time.Time         `json:"first_at"`
	LastAt     time.Time         `json:"last_at"`
	Reason     string            `json:"reason"`
}

func newFailureJSON(f inbox.Failure) failureJSON {
	return failureJSON{Source: f.Source, EventID: f.EventID, Kind: f.Kind, StatusCode: f.StatusCode, Count: f.Count,
		FirstAt: f.FirstAt.UTC(), LastAt: f.LastAt.UTC(), Reason: f.Reason}
}

// pausedJSON is a row of outbox paused.
type pausedJSON struct {
	Destination string    `json:"destination"`
	PausedAt    time.Time `json:"paused_at"`
	Reason      string    `json:"reason"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNilHeader(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	return h
}

// jsonList maps items to their JSON views; an empty list is [] (not null).
func jsonList[T, J any](items []T, view func(T) J) []J {
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, view(it))
	}
	return out
}

// writeJSON prints v indented. encoding/json escapes C0 control
// characters but not DEL, C1 controls or format characters (bidi
// overrides): those are escaped here too, as \uXXXX, so that JSON printed
// to a terminal cannot drive it either. A parser reads the same strings.
func writeJSON(w io.Writer, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	var b strings.Builder
	for _, r := range string(raw) {
		switch {
		case r == '\n' || !unsafeRune(r):
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('\n')
	_, err = io.WriteString(w, b.String())
	return err
}
