package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/eventkey"
)

// Inbox records incoming events in one schema. It holds no connections and
// is safe for concurrent use.
type Inbox struct {
	cfg     Config
	redact  redactor
	queries queries
}

type queries struct {
	record, markProcessed, markRejected, addRefs, get, findByRef, forget string
}

// New returns an Inbox. A nil cfg means the defaults.
func New(cfg *Config) (*Inbox, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	s := c.Schema
	return &Inbox{
		cfg:    c,
		redact: newRedactor(&c),
		queries: queries{
			record:        dbschema.Render(recordSQL, s),
			markProcessed: dbschema.Render(markProcessedSQL, s),
			markRejected:  dbschema.Render(markRejectedSQL, s),
			addRefs:       dbschema.Render(addRefsSQL, s),
			get:           dbschema.Render(getSQL, s),
			findByRef:     dbschema.Render(findByRefSQL, s),
			forget:        dbschema.Render(forgetSQL, s),
		},
	}, nil
}

func (in *Inbox) render(q string) string { return dbschema.Render(q, in.cfg.Schema) }

// TTL returns the dedupe window for source.
func (in *Inbox) TTL(source string) time.Duration {
	if ttl, ok := in.cfg.SourceTTL[source]; ok {
		return ttl
	}
	return in.cfg.TTL
}

// Record stores ev in db (the caller's transaction) unless it is a
// duplicate, in one round trip. When the result is New, do the work in the
// same transaction and commit; when it is not, change nothing.
//
// The record exists only if the transaction commits.
func (in *Inbox) Record(ctx context.Context, db DB, ev Event) (Result, error) {
	if ev.Source == "" || ev.ID == "" {
		return Result{}, fmt.Errorf("%w: source and id are required (got source %q, id %q)", ErrInvalidEvent, ev.Source, truncate(ev.ID, 100))
	}
	for what, s := range map[string]string{"source": ev.Source, "event id": ev.ID, "event type": ev.Type} {
		if err := checkText(what, s); err != nil {
			return Result{}, err
		}
	}
	status := ev.Status
	if status == "" {
		status = StatusProcessed
	}
	switch status {
	case StatusProcessed, StatusReceived, StatusRejected:
	default:
		return Result{}, fmt.Errorf("%w: unknown status %q", ErrInvalidEvent, status)
	}
	headers, err := json.Marshal(in.redact.headers(ev.Source, ev.Headers))
	if err != nil {
		return Result{}, fmt.Errorf("inbox: record: encode headers: %w", err)
	}
	refs, err := encodeRefs(ev.Refs)
	if err != nil {
		return Result{}, fmt.Errorf("inbox: record: %w", err)
	}
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	var original *string
	key := storageKey(ev.ID)
	if key != ev.ID {
		original = &ev.ID
	}

	var res Result
	err = db.QueryRow(ctx, in.queries.record,
		ev.Source, key, ev.BestEffort, ev.Type, optTime(ev.OccurredAt),
		in.TTL(ev.Source).Microseconds(), string(status), truncate(ev.Reason, 1000),
		payload, string(headers), refs, optTime(ev.SignedAt), original,
	).Scan(&res.Duplicates, &res.FirstReceivedAt, &res.Status)
	if err != nil {
		return Result{}, fmt.Errorf("inbox: record %s/%s: %w", ev.Source, key, err)
	}
	res.New = res.Duplicates == 0
	return res, nil
}

// MarkProcessed moves a StatusReceived event to StatusProcessed, as a
// compare-and-swap: it reports false when the event was not waiting (already
// processed by an earlier run, or unknown). Call it in the transaction of
// the event's business writes.
func (in *Inbox) MarkProcessed(ctx context.Context, db DB, source, id string) (bool, error) {
	tag, err := db.Exec(ctx, in.queries.markProcessed, source, storageKey(id))
	if err != nil {
		return false, fmt.Errorf("inbox: mark processed %s/%s: %w", source, id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkRejected records that an event was permanently refused, with the
// reason operators will see. An unknown or already rejected event is left
// as it is, without an error.
func (in *Inbox) MarkRejected(ctx context.Context, db DB, source, id, reason string) error {
	return in.markRejected(ctx, db, source, id, reason)
}

// markRejected is MarkRejected for a handle that only executes (a
// Receiver's ReceiverDB).
func (in *Inbox) markRejected(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, source, id, reason string) error {
	if _, err := db.Exec(ctx, in.queries.markRejected, source, storageKey(id), truncate(reason, 1000)); err != nil {
		return fmt.Errorf("inbox: mark rejected %s/%s: %w", source, id, err)
	}
	return nil
}

// Forget deletes an event's record, as the window's expiry and the purge
// would: its next delivery is new and runs the handler again. Use it for a
// deliberate replay, and in tests of a handler's idempotency
// (inboxtest.Replay). It reports whether there was a record.
//
// The body-dedupe record the receiver keeps beside GitHub, Shopify, Twilio
// and Linear events goes with it, or the replay would be a duplicate.
func (in *Inbox) Forget(ctx context.Context, db DB, source, id string) (bool, error) {
	var n int
	if err := db.QueryRow(ctx, in.queries.forget, source, storageKey(id)).Scan(&n); err != nil {
		return false, fmt.Errorf("inbox: forget %s/%s: %w", source, id, err)
	}
	return n == 1, nil
}

// AddRefs adds search references to a recorded event (a handler learns the
// contact or record id as it works). Existing names are overwritten. An
// event that is not recorded is an error wrapping ErrNotFound.
func (in *Inbox) AddRefs(ctx context.Context, db DB, source, id string, refs map[string]string) error {
	enc, err := encodeRefs(refs)
	if err != nil {
		return fmt.Errorf("inbox: add refs: %w", err)
	}
	tag, err := db.Exec(ctx, in.queries.addRefs, source, storageKey(id), enc)
	if err != nil {
		return fmt.Errorf("inbox: add refs %s/%s: %w", source, id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("inbox: add refs %s/%s: %w", source, id, ErrNotFound)
	}
	return nil
}

// Get returns one stored event, by the provider's id; an error wrapping
// ErrNotFound if there is none.
func (in *Inbox) Get(ctx context.Context, db DB, source, id string) (Stored, error) {
	rows, err := db.Query(ctx, in.queries.get, source, eventkey.Forms(id))
	if err != nil {
		return Stored{}, fmt.Errorf("inbox: get %s/%s: %w", source, id, err)
	}
	ev, err := pgx.CollectExactlyOneRow(rows, scanStored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Stored{}, fmt.Errorf("inbox: get %s/%s: %w", source, id, ErrNotFound)
	}
	if err != nil {
		return Stored{}, fmt.Errorf("inbox: get %s/%s: %w", source, id, err)
	}
	return ev, nil
}

// FindByRef returns the newest events (at most limit) whose reference name
// has the given value, e.g. FindByRef(ctx, db, "email", "ada@example.com", 50).
func (in *Inbox) FindByRef(ctx context.Context, db DB, name, value string, limit int) ([]Stored, error) {
	rows, err := db.Query(ctx, in.queries.findByRef, name, value, limit)
	if err != nil {
		return nil, fmt.Errorf("inbox: find by ref %s=%s: %w", name, value, err)
	}
	evs, err := pgx.CollectRows(rows, scanStored)
	if err != nil {
		return nil, fmt.Errorf("inbox: find by ref %s=%s: %w", name, value, err)
	}
	return evs, nil
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func encodeRefs(refs map[string]string) (string, error) {
	if refs == nil {
		return "{}", nil
	}
	for k, v := range refs {
		// jsonb cannot hold NUL: refuse it here, as malformed, rather
		// than fail the statement on every retry.
		if err := checkText("ref "+truncate(k, 50), k+v); err != nil {
			return "", err
		}
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return "", fmt.Errorf("encode refs: %w", err)
	}
	return string(b), nil
}

func scanStored(row pgx.CollectableRow) (Stored, error) {
	var (
		s       Stored
		status  string
		headers []byte
		refs    []byte
	)
	err := row.Scan(&s.Source, &s.ID, &s.BestEffort, &s.Type, &s.OccurredAt, &s.SignedAt, &s.ReceivedAt,
		&s.LastSeenAt, &s.ExpiresAt, &s.DuplicateCount, &status, &s.Reason,
		&s.ProcessedAt, &s.Payload, &headers, &refs, &s.StoredID)
	if err != nil {
		return Stored{}, err
	}
	s.Status = Status(status)
	if err := json.Unmarshal(headers, &s.Headers); err != nil {
		return Stored{}, fmt.Errorf("decode headers: %w", err)
	}
	if err := json.Unmarshal(refs, &s.Refs); err != nil {
		return Stored{}, fmt.Errorf("decode refs: %w", err)
	}
	return s, nil
}
