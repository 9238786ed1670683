package worker_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// Why the recording statement sends its batch's ids as pgtype.UUID values:
// pgx encodes a uuid.UUID through its text form (driver.Valuer), with an
// error and about 20 allocations per id, where a pgtype.UUID's 16 bytes
// are copied as they are (docs/benchmarks.md, bench-dispatch: the drain's
// client CPU). Compare allocs/op and B/op:
//
//	go test -run '^$' -bench 'IDsParam' -benchmem -count 5 ./worker/
func BenchmarkIDsParam(b *testing.B) {
	pool := pgtest.Pool(b)
	ctx := context.Background()
	ids := make([]uuid.UUID, 200) // a default batch
	typed := make([]pgtype.UUID, len(ids))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		typed[i] = pgtype.UUID{Bytes: ids[i], Valid: true}
	}
	for _, c := range []struct {
		name string
		arg  any
	}{{"uuid.UUID", ids}, {"pgtype.UUID", typed}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				var n int
				if err := pool.QueryRow(ctx, `SELECT cardinality($1::uuid[])`, c.arg).Scan(&n); err != nil || n != len(ids) {
					b.Fatal(n, err)
				}
			}
		})
	}
}
