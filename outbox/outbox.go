package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/eventkey"
	"github.com/outboxd/outboxd/internal/pgid"
	"github.com/outboxd/outboxd/internal/wakeup"
)

// DB is what the outbox needs from a database handle: pass the caller's
// pgx.Tx so that messages commit or roll back with the business writes.
// pgx.Tx, *pgx.Conn and *pgxpool.Pool satisfy it.
type DB interface {
	// Exec runs a statement that returns no rows.
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	// Query runs a statement that returns rows.
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	// QueryRow runs a statement that returns at most one row.
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// SendBatch sends several statements in one round trip (EnqueueBatch).
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Outbox enqueues messages in one schema of one database. It holds no
// connections (its Notifier, if any, does) and is safe for concurrent use.
// It remembers whether that schema has migration 16 (caller's ids in the
// unique index of keys): give each database an Outbox of its own.
type Outbox struct {
	schema string
	// The enqueue statements, with the idempotency-key check or without
	// it (fresh: a message whose id and key Enqueue made), for a message
	// with an ordering key or without one (unkeyed); for a message whose id
	// the caller gave, marked so (callerCol) once the schema can hold it.
	enqueue, fresh, unkeyed, unkeyedFresh string
	callerKeyed, callerUnkeyed            string

	existing, byID, callerIDProbe string
	get                           string
	notifier                      *Notifier
	maxPayload                    int // 0 or less: no bound

	// callerID is what the last look at the schema found
	// (marksCallerIDs): 1 migration 16's column, 0 no look yet, or minus
	// the time (Unix ns) of a look that found none. An Outbox serves one
	// database: this is that database's.
	callerID atomic.Int64
}

// callerIDRecheck is how long a producer that found no caller_id column
// goes on without it before it looks again: after migration 16 each
// process marks the ids its callers give within this time.
const callerIDRecheck = time.Minute

// New returns an Outbox. A nil cfg means the defaults.
func New(cfg *Config) (*Outbox, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	// The parameters: enqueueArgs' ten, then the key as an id for a
	// checked statement, then the destination's bit without a Notifier.
	render := func(keyed, checked, caller bool) string {
		dup, row, stored, keys, seq, bit := "", freshRow, "", "", "NULL", "$11"
		col, val := "", ""
		if caller {
			col, val = callerCol, callerVal
		}
		if checked {
			dup, row, stored, bit = dupCTE, checkedRow, checkedStored, "$12"
		}
		if keyed {
			keys, seq = "WITH "+keyedCTE, keyedSeq
			if checked {
				keys = "," + keyedCTE
			}
		}
		announce := announceLater
		if c.Notifier == nil {
			announce = strings.ReplaceAll(announceInline, "{{bit}}", bit)
		}
		q := strings.NewReplacer("{{dup}}", dup, "{{keys}}", keys, "{{row}}", row, "{{announce}}", announce).Replace(enqueueSQL)
		q = strings.NewReplacer("{{seq}}", seq, "{{stored}}", stored, "{{callercol}}", col, "{{callerval}}", val).Replace(q)
		return dbschema.Render(q, c.Schema)
	}
	return &Outbox{
		schema:        c.Schema,
		enqueue:       render(true, true, false),
		fresh:         render(true, false, false),
		unkeyed:       render(false, true, false),
		unkeyedFresh:  render(false, false, false),
		callerKeyed:   render(true, true, true),
		callerUnkeyed: render(false, true, true),
		notifier:      c.Notifier,
		maxPayload:    c.MaxPayload,
		existing:      dbschema.Render(existingSQL, c.Schema),
		byID:          dbschema.Render(byIDSQL, c.Schema),
		callerIDProbe: dbschema.Render(callerIDSQL, c.Schema),
		get:           dbschema.Render(getSQL, c.Schema),
	}, nil
}

// NotifyChannel is the channel on which committed enqueues are announced.
func (o *Outbox) NotifyChannel() string { return dbschema.NotifyChannel(o.schema) }

// Enqueue stores msg in db, the caller's transaction: the message exists,
// and will be delivered, only if that transaction commits. Enqueueing an
// idempotency key that the destination already has stores nothing and
// returns the existing message with Existing set.
//
// A message with an ordering key locks its key's row until the transaction
// ends (that is what makes sequence order commit order). Two transactions
// that each enqueue for keys A and B, in opposite orders, can deadlock:
// PostgreSQL ends one with SQLSTATE 40P01 (retry it). Enqueue several keys
// in a stable order (sorted), or use EnqueueBatch, which sorts them.
func (o *Outbox) Enqueue(ctx context.Context, db DB, msg Message) (Enqueued, error) {
	caller, err := o.marksCallerIDs(ctx, db, msg.ID != uuid.Nil)
	if err != nil {
		return Enqueued{}, err
	}
	sql, checked := o.statement(&msg, caller)
	args, err := o.args(&msg, checked)
	if err != nil {
		return Enqueued{}, err
	}
	var (
		seq      *int64
		lane     int16
		announce string
		out      = Enqueued{ID: msg.ID, IdempotencyKey: msg.IdempotencyKey}
	)
	err = db.QueryRow(ctx, sql, args...).Scan(&seq, &out.CreatedAt, &lane, &announce)
	if errors.Is(err, pgx.ErrNoRows) {
		return o.findExisting(ctx, db, msg)
	}
	if err != nil {
		return Enqueued{}, fmt.Errorf("outbox: enqueue to %s: %w", msg.Destination, o.enqueueError(err, caller))
	}
	if seq != nil {
		out.Seq = *seq
	}
	if err := o.announceInTx(ctx, db, o.announce(announce, lane, msg.Destination)); err != nil {
		return Enqueued{}, err
	}
	return out, nil
}

// marksCallerIDs says whether the statement of a message whose id the
// caller gave (given) is to write migration 16's caller_id (which it sets
// only while the index is valid: callerVal). It looks for the column in
// db's catalog the first time, and again callerIDRecheck after a look that
// found none.
func (o *Outbox) marksCallerIDs(ctx context.Context, db DB, given bool) (bool, error) {
	if !given {
		return false, nil
	}
	seen := o.callerID.Load()
	if seen == 1 || (seen < 0 && time.Since(time.Unix(0, -seen)) < callerIDRecheck) {
		return seen == 1, nil
	}
	var has, current bool
	if err := db.QueryRow(ctx, o.callerIDProbe).Scan(&has, &current); err != nil {
		return false, fmt.Errorf("outbox: enqueue: look for the caller_id column: %w", err)
	}
	// A "yes" always (a 42703 undoes it, enqueueError); a "no" only over
	// what this look replaces, never over another look's "yes", and not
	// from an older snapshot (callerIDSQL).
	switch {
	case has:
		o.callerID.Store(1)
	case current:
		o.callerID.CompareAndSwap(seen, -time.Now().UnixNano())
	}
	return has, nil
}

// enqueueError explains an enqueue statement's error where it can. An
// undefined column in a statement that marked a caller's id is caller_id
// gone (migration 16 reverted while this process ran): the next enqueue
// looks again.
func (o *Outbox) enqueueError(err error, marked bool) error {
	var pgErr *pgconn.PgError
	if marked && errors.As(err, &pgErr) && pgErr.Code == "42703" {
		o.callerID.Store(0)
		return fmt.Errorf("the schema lost its caller_id column (migration 16 reverted?), retry the transaction: %w", err)
	}
	return err
}

// statement picks the enqueue statement for msg, before its id and key are
// filled in, and says whether it checks the idempotency key: a message with
// neither an id, nor a key, nor a cause gets a new UUIDv7 and that id as
// its key, which no stored message can have, so it needs no check. With
// caller (marksCallerIDs), a message with an id is marked as the caller's.
func (o *Outbox) statement(msg *Message, caller bool) (sql string, checked bool) {
	fresh := msg.ID == uuid.Nil && msg.IdempotencyKey == "" && msg.CausedBy == nil
	switch {
	case caller && msg.ID != uuid.Nil && msg.OrderingKey == "":
		return o.callerUnkeyed, true
	case caller && msg.ID != uuid.Nil:
		return o.callerKeyed, true
	case msg.OrderingKey == "" && fresh:
		return o.unkeyedFresh, false
	case msg.OrderingKey == "":
		return o.unkeyed, true
	case fresh:
		return o.fresh, false
	}
	return o.enqueue, true
}

// announce hands the enqueueing transaction, its lane and its destination
// to the Notifier (with one; without, the NOTIFY went with the statement).
// A Notifier that is not running could not announce it: announce returns
// the mask for announceInTx instead (0 when there is none to send).
func (o *Outbox) announce(xid string, lane int16, destination string) uint64 {
	if o.notifier == nil {
		return 0
	}
	mask := wakeup.Mask(int(lane), destination)
	if o.notifier.notRunning() {
		return mask
	}
	if x, err := strconv.ParseInt(xid, 10, 64); err == nil {
		o.notifier.add(x, mask)
	}
	return 0
}

// announceInTx sends the NOTIFY a Notifier not running would have sent,
// in the enqueueing transaction: delivered at its commit, like
// announceInline's ("m" and the mask as an unsigned number, internal/wakeup).
//
// Given a pool rather than a transaction, the message committed already: a
// failed NOTIFY is then only logged (the sweep finds the message), since
// an error would have the caller enqueue it again.
func (o *Outbox) announceInTx(ctx context.Context, db DB, mask uint64) error {
	if mask == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `SELECT pg_notify($1, $2)`, o.NotifyChannel(), "m"+strconv.FormatUint(mask, 10))
	if err == nil {
		return nil
	}
	if _, inTx := db.(pgx.Tx); !inTx {
		o.notifier.log.Warn("a committed enqueue could not be announced (the Notifier is not running); the dispatchers' sweep finds it", "error", err)
		return nil
	}
	return fmt.Errorf("outbox: announce (the Notifier is not running): %w", err)
}

// args returns the enqueue statement's arguments for msg: a statement
// that checks the key takes the key as an id too (dupCTE), and without a
// Notifier the statement's NOTIFY takes the destination's filter bit
// (announceInline).
func (o *Outbox) args(msg *Message, checked bool) ([]any, error) {
	if o.maxPayload > 0 && len(msg.Payload) > o.maxPayload {
		return nil, &tooLongError{field: "payload", n: len(msg.Payload), max: o.maxPayload, bound: "Config.MaxPayload"}
	}
	args, err := enqueueArgs(msg)
	if err != nil {
		return nil, err
	}
	if checked {
		args = append(args, keyAsID(msg.IdempotencyKey))
	}
	if o.notifier != nil {
		return args, nil
	}
	return append(args, strconv.FormatUint(uint64(wakeup.DestBit(msg.Destination))<<32, 10)), nil
}

// keyAsID is key as the id of a message keyed by its own id (NULL unless
// key is a UUID as PostgreSQL writes one: the only form id::text takes).
func keyAsID(key string) pgtype.UUID {
	id, err := uuid.Parse(key)
	if err != nil || id.String() != key {
		return pgtype.UUID{}
	}
	return pgid.One(id)
}

// EnqueueBatch stores several messages in one round trip: messages that
// share an ordering key get increasing sequence numbers in slice order. The
// result has one entry per message, in slice order; msgs is not modified.
//
// The statements run sorted (by ordering key, a key's messages in slice
// order; unkeyed ones by destination and idempotency key), so two batches
// that share keys take their locks in the same order and cannot deadlock.
//
// An error names the message (its index in msgs) and leaves in the
// transaction whatever the batch stored before it: roll the transaction
// back. Most errors abort it anyway; ErrIDTaken does not.
func (o *Outbox) EnqueueBatch(ctx context.Context, db DB, msgs []Message) ([]Enqueued, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	msgs = slices.Clone(msgs)
	caller, err := o.marksCallerIDs(ctx, db, slices.ContainsFunc(msgs, func(m Message) bool { return m.ID != uuid.Nil }))
	if err != nil {
		return nil, err
	}
	args := make([][]any, len(msgs))
	sqls := make([]string, len(msgs))
	order := make([]int, len(msgs))
	marked := make([]bool, len(msgs)) // before args gives every message an id
	for i := range msgs {
		var checked bool
		marked[i] = caller && msgs[i].ID != uuid.Nil
		sqls[i], checked = o.statement(&msgs[i], caller)
		a, err := o.args(&msgs[i], checked)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		args[i], order[i] = a, i
	}
	slices.SortStableFunc(order, func(a, b int) int { return batchOrder(&msgs[a], &msgs[b]) })
	batch := &pgx.Batch{}
	for _, i := range order {
		batch.Queue(sqls[i], args[i]...)
	}
	out := make([]Enqueued, len(msgs))
	var (
		existing []int
		inTx     uint64 // announceInTx's mask
	)
	results := db.SendBatch(ctx, batch)
	for _, i := range order {
		m := msgs[i]
		var (
			seq      *int64
			lane     int16
			announce string
		)
		out[i] = Enqueued{ID: m.ID, IdempotencyKey: m.IdempotencyKey}
		err := results.QueryRow().Scan(&seq, &out[i].CreatedAt, &lane, &announce)
		if errors.Is(err, pgx.ErrNoRows) {
			existing = append(existing, i)
			continue
		}
		if err != nil {
			_ = results.Close()
			return nil, fmt.Errorf("outbox: enqueue batch, message %d to %s: %w", i, m.Destination, o.enqueueError(err, marked[i]))
		}
		if seq != nil {
			out[i].Seq = *seq
		}
		inTx |= o.announce(announce, lane, m.Destination)
	}
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("outbox: enqueue batch: %w", err)
	}
	if err := o.announceInTx(ctx, db, inTx); err != nil {
		return nil, err
	}
	for _, i := range existing {
		e, err := o.findExisting(ctx, db, msgs[i])
		if err != nil {
			return nil, fmt.Errorf("outbox: enqueue batch, message %d: %w", i, err)
		}
		out[i] = e
	}
	return out, nil
}

// batchOrder is the order in which EnqueueBatch takes locks: by ordering
// key (a key's messages keep their slice order: its row lock serialises
// batches that share it), and unkeyed messages by destination and
// idempotency key (the unique index they may wait on).
func batchOrder(a, b *Message) int {
	if c := strings.Compare(a.OrderingKey, b.OrderingKey); c != 0 || a.OrderingKey != "" {
		return c
	}
	if c := strings.Compare(a.Destination, b.Destination); c != 0 {
		return c
	}
	return strings.Compare(a.IdempotencyKey, b.IdempotencyKey)
}

func (o *Outbox) findExisting(ctx context.Context, db DB, msg Message) (Enqueued, error) {
	var (
		seq *int64
		out = Enqueued{IdempotencyKey: msg.IdempotencyKey, Existing: true}
	)
	err := db.QueryRow(ctx, o.existing, msg.Destination, msg.IdempotencyKey, keyAsID(msg.IdempotencyKey)).Scan(&out.ID, &seq, &out.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Enqueued{}, o.conflictError(ctx, db, msg)
	}
	if err != nil {
		return Enqueued{}, fmt.Errorf("outbox: enqueue to %s: idempotency key %s exists but cannot be read: %w", msg.Destination, msg.IdempotencyKey, err)
	}
	if seq != nil {
		out.Seq = *seq
	}
	return out, nil
}

// conflictError says why a message was not stored when no message with its
// key can be read: its id is another message's (ON CONFLICT DO NOTHING
// names no index, so the primary key is an arbiter too), or the message
// its key matched is gone (purged since the statement's snapshot), or
// another unique index refused it: (ordering_key, seq), when outbox_keys
// is behind the key's messages. A keyed message refused so has drawn a
// sequence number, a gap if the transaction commits.
func (o *Outbox) conflictError(ctx context.Context, db DB, msg Message) error {
	var dest, key string
	err := db.QueryRow(ctx, o.byID, pgid.One(msg.ID)).Scan(&dest, &key)
	if err == nil {
		// The other message's key is not quoted: the id finds it.
		return fmt.Errorf("%w (id %s is a stored message's to destination %s; this message: destination %s, idempotency key %s)",
			ErrIDTaken, msg.ID, dest, msg.Destination, msg.IdempotencyKey)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("outbox: enqueue to %s: idempotency key %s exists but cannot be read: %w", msg.Destination, msg.IdempotencyKey, err)
	}
	return fmt.Errorf("outbox: enqueue to %s: idempotency key %s (id %s) was found stored or refused by a unique index, but no such message can be read now: "+
		"it was purged meanwhile (retry the transaction), or the ordering key's sequence number is taken (outbox_keys is behind its messages)",
		msg.Destination, msg.IdempotencyKey, msg.ID)
}

func enqueueArgs(msg *Message) ([]any, error) {
	if err := msg.prepare(); err != nil {
		return nil, err
	}
	headers, err := json.Marshal(msg.Headers)
	if err != nil {
		return nil, fmt.Errorf("outbox: encode headers: %w", err)
	}
	if msg.Headers == nil {
		headers = []byte("{}")
	}
	var key, causeSource, causeID *string
	if msg.OrderingKey != "" {
		key = &msg.OrderingKey
	}
	if msg.CausedBy != nil {
		// As the inbox keys the event: a long id by its hash.
		id := eventkey.Storage(msg.CausedBy.EventID)
		causeSource, causeID = &msg.CausedBy.Source, &id
	}
	// pgid.One, not msg.ID: see internal/pgid.
	return []any{pgid.One(msg.ID), msg.Destination, msg.Type, key, msg.Payload, string(headers),
		msg.IdempotencyKey, causeSource, causeID, msg.Step}, nil
}

// Stored is a message as the outbox holds it.
type Stored struct {
	ID             uuid.UUID   // as enqueued
	Destination    string      // as enqueued
	Type           string      // as enqueued
	OrderingKey    string      // "" without one
	Seq            int64       // see Enqueued.Seq
	Payload        []byte      // as enqueued
	Headers        http.Header // as enqueued
	IdempotencyKey string      // given or derived
	CausedBy       *EventRef   // nil if none
	Step           string      // as enqueued
	Status         Status      // where it stands
	Attempts       int         // delivery attempts so far, abandoned ones included
	NextAttemptAt  time.Time   // when a pending message is due
	LastError      string      // the last failed attempt's error, "" if none
	LastStatusCode *int        // the last attempt's HTTP status, nil if none
	CreatedAt      time.Time   // when it was enqueued
	DeliveredAt    *time.Time  // nil until delivered
}

// Get returns one message by id; an error wrapping ErrNotFound if there is
// none.
func (o *Outbox) Get(ctx context.Context, db DB, id uuid.UUID) (Stored, error) {
	rows, err := db.Query(ctx, o.get, id)
	if err != nil {
		return Stored{}, fmt.Errorf("outbox: get %s: %w", id, err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, scanStored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Stored{}, fmt.Errorf("outbox: get %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Stored{}, fmt.Errorf("outbox: get %s: %w", id, err)
	}
	return s, nil
}

func scanStored(row pgx.CollectableRow) (Stored, error) {
	var (
		s                     Stored
		key, srcRef, eventRef *string
		seq                   *int64
		headers               []byte
	)
	err := row.Scan(&s.ID, &s.Destination, &s.Type, &key, &seq,
		&s.Payload, &headers, &s.IdempotencyKey, &srcRef, &eventRef, &s.Step, &s.Status,
		&s.Attempts, &s.NextAttemptAt, &s.LastError, &s.LastStatusCode, &s.CreatedAt, &s.DeliveredAt)
	if err != nil {
		return Stored{}, err
	}
	if key != nil {
		s.OrderingKey = *key
	}
	if seq != nil {
		s.Seq = *seq
	}
	if srcRef != nil && eventRef != nil {
		s.CausedBy = &EventRef{Source: *srcRef, EventID: *eventRef}
	}
	if err := json.Unmarshal(headers, &s.Headers); err != nil {
		return Stored{}, fmt.Errorf("decode headers: %w", err)
	}
	return s, nil
}
