package console

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/eventkey"
	"github.com/outboxd/outboxd/internal/pgid"
	"github.com/outboxd/outboxd/outbox"
)

// store is the one query layer under the pages and the API.
type store struct {
	pool  *pgxpool.Pool
	in    *inbox.Inbox
	out   *outbox.Outbox
	q     queries
	limit int
	// configured are the destinations in the config (Config.Destinations).
	configured []string
}

type queries struct {
	events, eventSearch, destinations, lanes, dispatchers, failureSummary string
	messages, destinationKnown                                            string
	messageSearch                                                         map[string]string
	auditInsert, auditForMessage, auditRecent                             string
}

// How many events the names of references are read from, for a search by
// value (eventsSearchSQL): the newest, and some of each source.
const (
	refNamesNewest    = 1000
	refNamesPerSource = 200
)

func newStore(pool *pgxpool.Pool, cfg *Config) (*store, error) {
	in, err := inbox.New(&inbox.Config{Schema: cfg.Schema})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	out, err := outbox.New(&outbox.Config{Schema: cfg.Schema})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	r := func(q string) string { return dbschema.Render(q, cfg.Schema) }
	search := make(map[string]string, len(messageMatches))
	for k, m := range messageMatches {
		search[k] = r(strings.Replace(messagesSearchSQL, "{{match}}", m, 1))
	}
	eventSearch := strings.NewReplacer("{{namesNewest}}", strconv.Itoa(refNamesNewest),
		"{{namesPerSource}}", strconv.Itoa(refNamesPerSource)).Replace(eventsSearchSQL)
	return &store{pool: pool, in: in, out: out, limit: cfg.PageSize, configured: append([]string{}, cfg.Destinations...), q: queries{
		events: r(eventsListSQL), eventSearch: r(eventSearch), messages: r(messagesListSQL), messageSearch: search,
		destinations: r(destinationsSQL), destinationKnown: r(destinationKnownSQL),
		lanes: r(lanesSQL), dispatchers: r(dispatchersSQL), failureSummary: r(failureSummarySQL),
		auditInsert: r(auditInsertSQL), auditForMessage: r(auditForMessageSQL), auditRecent: r(auditRecentSQL),
	}}, nil
}

// customPlan runs a search as an unnamed statement (described, then run:
// one more round trip), which PostgreSQL plans with its actual arguments
// every time. A cached prepared statement switches to a generic plan after
// five runs, and the generic plan of "$1 IS NULL OR ..." cannot pick the
// index the argument calls for: it would read the received_at index from
// the newest row until it found 100 matches, on a large inbox the whole
// index.
const customPlan = pgx.QueryExecModeDescribeExec

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// EventFilter selects inbox events. Zero fields match everything.
type EventFilter struct {
	// Query is an event id, or a reference's value whatever its name
	// ("ada@example.com"), or name=value for one reference.
	Query  string       `json:"q,omitempty"`
	Source string       `json:"source,omitempty"` // "": any source
	Status inbox.Status `json:"status,omitempty"` // "": any status
	Since  time.Time    `json:"since,omitzero"`   // received at or after Since
	Until  time.Time    `json:"until,omitzero"`   // received before Until
	// BeforeSource and BeforeID continue a list after its last row (its
	// source and cursor), with Until its received time.
	BeforeSource string `json:"before_source,omitempty"`
	BeforeID     string `json:"before_id,omitempty"` // the last row's cursor
}

// EventRow is one event in a list.
type EventRow struct {
	Source         string            `json:"source"`          // the event's source
	ID             string            `json:"id"`              // the provider's event id
	Type           string            `json:"type"`            // the provider's event type
	Status         inbox.Status      `json:"status"`          // where the event stands
	ReceivedAt     time.Time         `json:"received_at"`     // the first delivery's time
	LastSeenAt     time.Time         `json:"last_seen_at"`    // the latest duplicate's time
	DuplicateCount int               `json:"duplicate_count"` // deliveries after the first
	Refs           map[string]string `json:"refs"`            // search references
	// Cursor is the stored id (the SHA-256 of an id over 200 bytes), for
	// the next page's before_id.
	Cursor string `json:"cursor"`
}

func (s *store) events(ctx context.Context, f EventFilter) ([]EventRow, error) {
	var (
		value, refName, refValue *string
		keys                     []string // nil: not an event id search
	)
	if name, v, ok := refQuery(f.Query); ok {
		refName, refValue = &name, &v
	} else if value = opt(f.Query); value != nil {
		keys = eventkey.Forms(f.Query) // as the inbox keys it, or did
	}
	q := s.q.events
	if value != nil || refName != nil {
		q = s.q.eventSearch
	}
	rows, err := s.pool.Query(ctx, q, customPlan, value, refName, refValue, opt(f.Source), opt(string(f.Status)),
		optTime(f.Since), optTime(f.Until), s.limit, opt(f.BeforeSource), opt(f.BeforeID), keys)
	if err != nil {
		return nil, fmt.Errorf("console: events: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (EventRow, error) {
		var e EventRow
		var refs []byte
		if err := row.Scan(&e.Source, &e.ID, &e.Type, &e.Status, &e.ReceivedAt, &e.LastSeenAt, &e.DuplicateCount, &refs, &e.Cursor); err != nil {
			return e, err
		}
		return e, json.Unmarshal(refs, &e.Refs)
	})
}

// MessageFilter selects outbox messages. Zero fields match everything.
type MessageFilter struct {
	IDs         []uuid.UUID `json:"ids,omitempty"`         // nil: any message
	Destination string      `json:"destination,omitempty"` // "": any destination
	// Status is pending (waiting, no failed attempt since it was enqueued
	// or requeued), retrying (waiting after a failed attempt), dead or
	// delivered.
	Status         MessageStatus `json:"status,omitempty"`
	OrderingKey    string        `json:"ordering_key,omitempty"`    // "": any key
	IdempotencyKey string        `json:"idempotency_key,omitempty"` // "": any key
	Type           string        `json:"type,omitempty"`            // "": any type
	Since          time.Time     `json:"since,omitzero"`            // created at or after Since
	Until          time.Time     `json:"until,omitzero"`            // created before Until
	// CausedBy narrows to the messages an inbox event caused.
	CausedBy *outbox.EventRef `json:"caused_by,omitempty"`
	// Before continues a list after its last row (its id), with Until its
	// creation time.
	Before uuid.UUID `json:"before,omitzero"`
}

// MessageRow is one message in a list.
type MessageRow struct {
	ID             uuid.UUID     `json:"id"`                           // the message's id
	Destination    string        `json:"destination"`                  // where it goes
	Type           string        `json:"type"`                         // the message type
	OrderingKey    string        `json:"ordering_key,omitempty"`       // "" without one
	Seq            int64         `json:"seq,omitempty"`                // its place among its key's messages
	IdempotencyKey string        `json:"idempotency_key"`              // sent with every attempt
	Status         MessageStatus `json:"status"`                       // as the console shows it
	Attempts       int           `json:"attempts"`                     // delivery attempts so far
	NextAttemptAt  *time.Time    `json:"next_attempt_at,omitempty"`    // when a waiting message is due
	LastError      string        `json:"last_error,omitempty"`         // the last failed attempt's error
	LastStatusCode *int          `json:"last_status_code,omitempty"`   // the last attempt's HTTP status
	CreatedAt      time.Time     `json:"created_at"`                   // when it was enqueued
	DeliveredAt    *time.Time    `json:"delivered_at,omitempty"`       // nil until delivered
	CausedBySource string        `json:"caused_by_source,omitempty"`   // the causing event's source, if any
	CausedByID     string        `json:"caused_by_event_id,omitempty"` // the causing event's id, if any
}

// messageQuery picks the list or an index lookup (messageMatches) for f,
// and its arguments.
func (s *store) messageQuery(f MessageFilter) (string, []any) {
	var ids []uuid.UUID
	if len(f.IDs) > 0 {
		ids = f.IDs
	}
	var before *uuid.UUID
	if f.Before != uuid.Nil {
		before = &f.Before
	}
	var (
		causeSource *string
		causeIDs    []string // nil: no such filter
	)
	if f.CausedBy != nil {
		// Stored as the inbox keys the event (a long id by its hash), or
		// as given by an earlier version: either matches.
		causeSource, causeIDs = &f.CausedBy.Source, eventkey.Forms(f.CausedBy.EventID)
	}
	q := s.q.messages
	switch {
	case ids != nil:
		q = s.q.messageSearch["ids"]
	case f.IdempotencyKey != "":
		q = s.q.messageSearch["idempotency_key"]
	case causeIDs != nil:
		q = s.q.messageSearch["caused_by"]
	case f.OrderingKey != "":
		q = s.q.messageSearch["ordering_key"]
	}
	return q, []any{pgid.Many(ids), opt(f.Destination), opt(string(f.Status)), opt(f.OrderingKey),
		opt(f.IdempotencyKey), opt(f.Type), optTime(f.Since), optTime(f.Until), causeSource, causeIDs, s.limit, before}
}

func (s *store) messages(ctx context.Context, f MessageFilter) ([]MessageRow, error) {
	q, args := s.messageQuery(f)
	rows, err := s.pool.Query(ctx, q, append([]any{customPlan}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("console: messages: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (MessageRow, error) {
		var m MessageRow
		var next time.Time
		err := row.Scan(&m.ID, &m.Destination, &m.Type, &m.OrderingKey, &m.Seq, &m.IdempotencyKey, &m.Status,
			&m.Attempts, &next, &m.LastError, &m.LastStatusCode, &m.CreatedAt, &m.DeliveredAt,
			&m.CausedBySource, &m.CausedByID)
		// Only a waiting message has a next attempt.
		if m.Status == MessageStatusPending || m.Status == MessageStatusRetrying {
			m.NextAttemptAt = &next
		}
		return m, err
	})
}
