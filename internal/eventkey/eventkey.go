// Package eventkey maps a provider's event id to the value outboxd stores
// and indexes for it: the id itself, or the SHA-256 of a long one. The inbox
// keys its rows by it, and the outbox stores a message's causing event id
// the same way, so that the two always match.
package eventkey

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxLen is the longest event id stored as itself. A btree entry cannot
// exceed about 2.7 KB, and an authentic event must never fail (or be
// refused) because of its id's length.
const MaxLen = 200

// Storage is the stored value for id: id itself up to MaxLen bytes,
// "sha256:" and the hex digest of id beyond.
func Storage(id string) string {
	if len(id) <= MaxLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Forms are the values a lookup by id must match: Storage(id), and for a
// long id also id itself, as earlier versions of the outbox stored a
// message's causing event id (those that fit under the btree limit).
func Forms(id string) []string {
	if k := Storage(id); k != id {
		return []string{id, k}
	}
	return []string{id}
}
