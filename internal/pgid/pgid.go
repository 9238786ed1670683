// Package pgid hands UUIDs to pgx in the form it encodes in every query
// mode, cheaply.
//
// pgx encodes a uuid.UUID through its driver.Valuer (text, an error value
// and about 20 allocations per id), and cannot encode a []uuid.UUID or a
// [16]byte at all in the exec and simple-protocol modes (PgBouncer's usual
// settings), where the server does not describe the statement's parameter
// types. pgtype.UUID is registered with pgx as uuid: its 16 bytes are
// copied as they are, in every mode.
package pgid

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// One returns id as a pgx uuid value.
func One(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// Many returns ids as a pgx uuid[] value; nil stays nil (SQL NULL).
func Many(ids []uuid.UUID) []pgtype.UUID {
	if ids == nil {
		return nil
	}
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = One(id)
	}
	return out
}
