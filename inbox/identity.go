package inbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/outboxd/outboxd/internal/eventkey"
)

// storageKey is the event_id column's value for a provider's id: long
// ids are keyed by their SHA-256, the original kept in the row
// (internal/eventkey, shared with the outbox's causing event ids).
func storageKey(id string) string { return eventkey.Storage(id) }

// BodyID is the id of an event whose provider sends none: a hash of the
// body, the part of a delivery that a retry repeats. Never the signing
// time, which changes on every retry; two events with identical bodies
// are one event (see docs/receiving.md, "Events without an id").
func BodyID(body []byte) string {
	sum := sha256.Sum256(body)
	return "body:" + hex.EncodeToString(sum[:])
}

// rejectedID keys a malformed request's record by its body, apart from
// BodyID: what was malformed may be an unsigned header (a type, an id), and
// under BodyID (the body-dedupe key and the id of an event without one) a
// captured request replayed with such a header made the genuine event a
// duplicate, never processed.
func rejectedID(body []byte) string {
	sum := sha256.Sum256(body)
	return "rejected:" + hex.EncodeToString(sum[:])
}

// bodyDedupeKey is the second record of an event whose id comes from an
// unsigned header (Meta.BodyUnique): the hash of the body, with the type
// in front only where the provider sends one body under several types
// (Meta.BodyKeyType: Shopify). A type left out of the key cannot be used
// to replay a captured request as new. forgetSQL computes the same in SQL.
func bodyDedupeKey(typ string, body []byte) string {
	if typ == "" {
		return BodyID(body)
	}
	return BodyID(append([]byte(typ+"\x00"), body...))
}

// checkText refuses what PostgreSQL text cannot hold (NUL) and what is not
// UTF-8: such a value fails the INSERT on every retry, so it is malformed,
// not transient.
func checkText(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalidEvent, what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, what)
	}
	return nil
}
