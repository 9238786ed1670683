package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgid"
)

// Filter selects messages for the operator calls. Zero fields match
// everything.
type Filter struct {
	IDs         []uuid.UUID // nil or empty: any message
	Destination string      // "": any destination
	Type        string      // "": any type
	// Since and Until bound the creation time: Since <= created_at < Until.
	Since, Until time.Time
	// OrderingKey and IdempotencyKey, when set, must equal the message's.
	OrderingKey, IdempotencyKey string
}

func (f Filter) args(status string) []any {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	optTime := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	var ids []uuid.UUID
	if len(f.IDs) > 0 {
		ids = f.IDs
	}
	return []any{status, pgid.Many(ids), opt(f.Destination), opt(f.Type), optTime(f.Since), optTime(f.Until),
		opt(f.OrderingKey), opt(f.IdempotencyKey)}
}

func (o *Outbox) render(q string) string { return dbschema.Render(q, o.schema) }

// ListDead returns dead-lettered messages matching f, oldest first, at most
// limit.
func (o *Outbox) ListDead(ctx context.Context, db DB, f Filter, limit int) ([]Stored, error) {
	rows, err := db.Query(ctx, o.render(listSQL), append(f.args(string(StatusDead)), limit)...)
	if err != nil {
		return nil, fmt.Errorf("outbox: list dead: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanStored)
	if err != nil {
		return nil, fmt.Errorf("outbox: list dead: %w", err)
	}
	return out, nil
}

// Requeue puts the dead messages matching f back in line, with a fresh
// attempt budget and the same idempotency key, so a downstream that already
// applied one does not apply it twice. It returns how many were requeued.
func (o *Outbox) Requeue(ctx context.Context, db DB, f Filter) (int64, error) {
	ids, err := o.RequeueIDs(ctx, db, f)
	return int64(len(ids)), err
}

// RequeueIDs is Requeue returning the ids it requeued, for an audit record.
func (o *Outbox) RequeueIDs(ctx context.Context, db DB, f Filter) ([]uuid.UUID, error) {
	return o.changeDead(ctx, db, requeueSQL, "requeue", f)
}

// PurgeDead deletes the dead messages matching f, with their attempts.
func (o *Outbox) PurgeDead(ctx context.Context, db DB, f Filter) (int64, error) {
	ids, err := o.PurgeDeadIDs(ctx, db, f)
	return int64(len(ids)), err
}

// PurgeDeadIDs is PurgeDead returning the ids it deleted.
func (o *Outbox) PurgeDeadIDs(ctx context.Context, db DB, f Filter) ([]uuid.UUID, error) {
	return o.changeDead(ctx, db, purgeSQL, "purge dead", f)
}

// CountDead counts the dead messages matching f: what Requeue or PurgeDead
// would change now, for a confirmation step.
func (o *Outbox) CountDead(ctx context.Context, db DB, f Filter) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, o.render(countSQL), f.args(string(StatusDead))...).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: count dead: %w", err)
	}
	return n, nil
}

// DeadIDs lists, sorted, the ids of the dead messages matching f: what
// Requeue or PurgeDead would change now, for a confirmation that must name
// exactly what it confirmed.
func (o *Outbox) DeadIDs(ctx context.Context, db DB, f Filter) ([]uuid.UUID, error) {
	rows, err := db.Query(ctx, o.render(idsSQL), f.args(string(StatusDead))...)
	if err != nil {
		return nil, fmt.Errorf("outbox: dead ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("outbox: dead ids: %w", err)
	}
	return ids, nil
}

func (o *Outbox) changeDead(ctx context.Context, db DB, q, what string, f Filter) ([]uuid.UUID, error) {
	rows, err := db.Query(ctx, o.render(q), f.args(string(StatusDead))...)
	if err != nil {
		return nil, fmt.Errorf("outbox: %s: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("outbox: %s: %w", what, err)
	}
	return ids, nil
}

// Attempt is one recorded delivery attempt.
type Attempt struct {
	Number       int           // counts from 1
	At           time.Time     // when the attempt started
	Duration     time.Duration // how long it took
	Outcome      Outcome       // what it came to
	StatusCode   *int          // the HTTP status, nil if none
	Error        string        // what went wrong, "" if nothing
	ResponseBody string        // the start of the response body
	Dispatcher   string        // the ID of the dispatcher that made it
}

// Attempts returns a message's delivery attempts, first first.
func (o *Outbox) Attempts(ctx context.Context, db DB, id uuid.UUID) ([]Attempt, error) {
	rows, err := db.Query(ctx, o.render(attemptsSQL), id)
	if err != nil {
		return nil, fmt.Errorf("outbox: attempts of %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		var ms float64
		err := row.Scan(&a.Number, &a.At, &ms, &a.Outcome, &a.StatusCode, &a.Error, &a.ResponseBody, &a.Dispatcher)
		a.Duration = time.Duration(ms * float64(time.Millisecond))
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: attempts of %s: %w", id, err)
	}
	return out, nil
}

// PausedDestination is a destination that answered 410 Gone.
type PausedDestination struct {
	Name     string    // the destination
	Reason   string    // why (the 410's text, or an operator's reason)
	PausedAt time.Time // when it was paused
}

// PausedDestinations lists paused destinations.
func (o *Outbox) PausedDestinations(ctx context.Context, db DB) ([]PausedDestination, error) {
	rows, err := db.Query(ctx, o.render(pausedListSQL))
	if err != nil {
		return nil, fmt.Errorf("outbox: paused destinations: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[PausedDestination])
}

// ResumeDestination lets dispatchers send to a paused destination again.
func (o *Outbox) ResumeDestination(ctx context.Context, db DB, name string) error {
	tag, err := db.Exec(ctx, o.render(resumeSQL), name)
	if err != nil {
		return fmt.Errorf("outbox: resume %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("resume %s: %w", name, ErrNotPaused)
	}
	return nil
}

// PauseDestination stops every dispatcher sending to name until
// ResumeDestination, as a 410 Gone does; messages wait, pending. A pause of a
// paused destination changes nothing and reports false.
func (o *Outbox) PauseDestination(ctx context.Context, db DB, name, reason string) (bool, error) {
	tag, err := db.Exec(ctx, o.render(pauseSQL), name, reason)
	if err != nil {
		return false, fmt.Errorf("outbox: pause %s: %w", name, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Served reports whether a live dispatcher has destination in its
// configuration. Messages for a destination that none serves are kept
// pending (never dead-lettered) until one does.
func (o *Outbox) Served(ctx context.Context, db DB, destination string) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, o.render(servedSQL), destination).Scan(&ok); err != nil {
		return false, fmt.Errorf("outbox: served %s: %w", destination, err)
	}
	return ok, nil
}
