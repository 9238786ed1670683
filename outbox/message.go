package outbox

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/httpheader"
)

// Message is one call to make downstream.
type Message struct {
	// ID identifies the message. Zero: a new UUIDv7 (time-ordered, good
	// index locality).
	ID uuid.UUID
	// Destination names where the message goes, as configured in the
	// dispatcher. Required; at most 200 bytes.
	Destination string
	// Type is the message type ("deal.won", "email.welcome"...).
	Type string
	// OrderingKey, when set, makes messages with the same key go out one at
	// a time in commit order. Leave it empty when order does not matter.
	// At most 2000 bytes.
	OrderingKey string
	// Payload is the body sent downstream.
	Payload []byte
	// Headers are sent downstream with the payload. Enqueue refuses
	// (ErrInvalidMessage) a name that is not an HTTP token or a value with
	// a control character other than tab (no attempt could send them), and
	// an Idempotency-Key header: the key is IdempotencyKey, which every
	// destination sends (the HTTP destination replaces such a header); and
	// headers taking more than 64 KiB as an HTTP request carries them
	// ("Name: value" and a line break each), which HTTP servers refuse.
	// The HTTP destination sets Host, Content-Length, Transfer-Encoding,
	// Trailer, Webhook-Id and Webhook-Timestamp (and Webhook-Signature
	// with a secret) itself: a message's own are stored but not sent.
	Headers http.Header
	// CausedBy is the inbox event that caused this message, if any. It links
	// the message to the event and derives its idempotency key. Its source
	// is at most 200 bytes; an event id of any length is stored as the
	// inbox stores it (beyond 200 bytes, by its SHA-256: see EventRef).
	CausedBy *EventRef
	// Step tells apart several messages that one event causes with the same
	// type and destination ("welcome-email", "reminder-email").
	Step string
	// IdempotencyKey overrides the derived key. Leave empty to derive it.
	// At most 2000 bytes.
	IdempotencyKey string
}

// EventRef names an inbox event. Its JSON names are the console API's.
//
// A stored message's EventID is the inbox's key for the event: the
// provider's id, or for an id longer than 200 bytes "sha256:" and its
// digest, which the inbox row of the event is keyed by too (it keeps the
// original). Lookups by a causing event (the console) accept either.
// DeriveIdempotencyKey takes the id as received (Delivery.ID): given a
// stored message's hashed EventID, it derives another key.
type EventRef struct {
	Source  string `json:"source"`   // the inbox source's name
	EventID string `json:"event_id"` // the provider's event id (stored as the inbox keys it, see above)
}

// Enqueued says what Enqueue stored, or found.
type Enqueued struct {
	ID             uuid.UUID // the stored message's id
	IdempotencyKey string    // given or derived
	// Seq is the message's place among those with its ordering key (0
	// without a key): it grows in commit order. It is not dense: messages
	// of one key to other destinations take numbers too, and two
	// transactions that enqueue the same idempotency key at once may leave
	// a gap, as does a message refused with ErrIDTaken in a transaction
	// that commits. And it restarts at 1 once every message of the key is gone
	// (delivered and purged: the purge then forgets the key). Compare the
	// sequence numbers of messages that exist together; never count them,
	// nor keep the last one seen beyond the delivered retention.
	Seq int64
	// Existing is true when a message with this idempotency key was already
	// there: nothing new was stored and the fields describe that message.
	Existing  bool
	CreatedAt time.Time // when the stored message was enqueued
}

// keyNamespace is the UUIDv5 namespace of derived idempotency keys.
var keyNamespace = uuid.MustParse("6f1e7c1a-52b3-4c57-9b1e-0e3f4a2d7c11")

// DeriveIdempotencyKey returns the idempotency key of a message caused by an
// inbox event: a UUIDv5 of the event's source and id, the message type and
// the step. The same inputs give the same key in every process and on every
// run, so a handler that runs again sends downstream the same key.
func DeriveIdempotencyKey(cause EventRef, msgType, step string) string {
	// NUL cannot appear in any of the parts (PostgreSQL text refuses it),
	// so joining with it is unambiguous.
	name := strings.Join([]string{cause.Source, cause.EventID, msgType, step}, "\x00")
	return uuid.NewSHA1(keyNamespace, []byte(name)).String()
}

// Length limits of the indexed fields: an index entry cannot exceed about
// 2.7 KB, and a value over it would fail the caller's transaction with a
// database error (or not, if it happened to compress). Destination and
// ordering key share an index, as do destination and idempotency key.
const (
	maxNameLen = 200  // Destination, CausedBy.Source
	maxKeyLen  = 2000 // IdempotencyKey, OrderingKey
)

// checkLengths refuses what the indexes cannot hold, naming the field,
// never quoting it (it may be anything).
func (m *Message) checkLengths() error {
	for _, f := range []struct {
		name  string
		value string
		max   int
	}{
		{"destination", m.Destination, maxNameLen},
		{"ordering key", m.OrderingKey, maxKeyLen},
		{"idempotency key", m.IdempotencyKey, maxKeyLen},
		{"CausedBy source", causeSource(m.CausedBy), maxNameLen},
	} {
		if len(f.value) > f.max {
			return &tooLongError{field: f.name, n: len(f.value), max: f.max}
		}
	}
	return nil
}

// checkText refuses, naming the field but not quoting it, what PostgreSQL
// cannot store in a text column (a NUL byte, invalid UTF-8: the statement
// would fail and abort the caller's transaction), a destination with a
// control character (it is named in errors and logs), and an idempotency
// key that cannot go out as the Idempotency-Key header (every attempt
// would fail until the message died).
func (m *Message) checkText() error {
	var causeID string
	if m.CausedBy != nil {
		causeID = m.CausedBy.EventID
	}
	for _, f := range []struct{ name, value string }{
		{"destination", m.Destination}, {"type", m.Type}, {"ordering key", m.OrderingKey},
		{"idempotency key", m.IdempotencyKey}, {"step", m.Step},
		{"CausedBy source", causeSource(m.CausedBy)}, {"CausedBy event id", causeID},
	} {
		if !utf8.ValidString(f.value) || strings.IndexByte(f.value, 0) >= 0 {
			return &notTextError{field: f.name}
		}
	}
	if hasControl(m.Destination) {
		return fmt.Errorf("%w: destination holds a control character", ErrInvalidMessage)
	}
	// A tab too, and a space at either end: a receiver trims those from a
	// header's ends, so "k" and "k " would be two keys here and one
	// downstream.
	if hasControl(m.IdempotencyKey) {
		return fmt.Errorf("%w: idempotency key holds a control character (it is sent as the Idempotency-Key header)", ErrInvalidMessage)
	}
	if k := m.IdempotencyKey; k != "" && (k[0] == ' ' || k[len(k)-1] == ' ') {
		return fmt.Errorf("%w: idempotency key begins or ends with a space (receivers trim it from the Idempotency-Key header)", ErrInvalidMessage)
	}
	return nil
}

// checkHeaderData refuses headers that the data, not the code, makes
// unstorable: over httpheader.MessageBytes as sent, or a value that is not
// UTF-8 (stored as JSON, it would be altered: \xff became U+FFFD).
func checkHeaderData(h map[string][]string) error {
	size := 0
	for name, vs := range h {
		for _, v := range vs {
			if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
				return &notTextError{field: "header " + httpheader.Printable(name) + "'s value"}
			}
			size += httpheader.SentBytes(name, v)
		}
	}
	if size > httpheader.MessageBytes {
		return &tooLongError{field: "header block as sent", n: size, max: httpheader.MessageBytes, bound: "64 KiB; HTTP servers refuse far less"}
	}
	return nil
}

// hasControl reports an ASCII control character (tab included) or DEL.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

func causeSource(c *EventRef) string {
	if c == nil {
		return ""
	}
	return c.Source
}

// prepare fills in the id and the idempotency key and checks the message.
func (m *Message) prepare() error {
	if m.Destination == "" {
		return fmt.Errorf("%w: destination is required", ErrInvalidMessage)
	}
	if m.CausedBy != nil && (m.CausedBy.Source == "" || m.CausedBy.EventID == "") {
		return fmt.Errorf("%w: CausedBy needs both source and event id", ErrInvalidMessage)
	}
	if err := m.checkLengths(); err != nil {
		return err
	}
	if err := m.checkText(); err != nil {
		return err
	}
	if err := checkHeaderData(m.Headers); err != nil {
		return err
	}
	if bad := httpheader.CheckMessage(m.Headers); bad != "" {
		// Stored, it would fail every attempt until it died (or, an
		// Idempotency-Key, dedupe nothing).
		return fmt.Errorf("%w: %s", ErrInvalidMessage, bad)
	}
	if m.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("outbox: new message id: %w", err)
		}
		m.ID = id
	}
	if m.IdempotencyKey == "" {
		if m.CausedBy != nil {
			m.IdempotencyKey = DeriveIdempotencyKey(*m.CausedBy, m.Type, m.Step)
		} else {
			m.IdempotencyKey = m.ID.String()
		}
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	return nil
}
