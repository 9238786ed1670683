package outbox_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
)

// Only a message whose id and key Enqueue makes skips the idempotency-key
// check: one with the caller's id (its key derived from it), or with the
// key of a message stored earlier, is still deduped, keyed or not, and a
// keyed duplicate draws no sequence number.
func TestEnqueueSkipsTheKeyCheckOnlyForKeysItMade(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, key := range []string{"", "contact-1"} {
		m := msg("email")
		m.OrderingKey = key
		m.ID = uuid.Must(uuid.NewV7())
		first, err := b.outbox.Enqueue(ctx, b.pool, m)
		if err != nil || first.Existing {
			t.Fatalf("ordering key %q, caller's id: %+v %v", key, first, err)
		}
		again, err := b.outbox.Enqueue(ctx, b.pool, m)
		if err != nil || !again.Existing || again.ID != first.ID || again.Seq != first.Seq {
			t.Fatalf("ordering key %q, caller's id again: %+v (first %+v) %v", key, again, first, err)
		}

		fresh := msg("email")
		fresh.OrderingKey = key
		made, err := b.outbox.Enqueue(ctx, b.pool, fresh)
		if err != nil || made.Existing || made.IdempotencyKey != made.ID.String() {
			t.Fatalf("ordering key %q, fresh: %+v %v", key, made, err)
		}
		fresh.IdempotencyKey = made.IdempotencyKey
		dup, err := b.outbox.Enqueue(ctx, b.pool, fresh)
		if err != nil || !dup.Existing || dup.ID != made.ID || dup.Seq != made.Seq {
			t.Fatalf("ordering key %q, the fresh message's key again: %+v (first %+v) %v", key, dup, made, err)
		}
	}
	if n := b.count(t); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}
	var last int64
	if err := b.pool.QueryRow(ctx, `SELECT last_seq FROM outboxd.outbox_keys WHERE ordering_key = 'contact-1'`).Scan(&last); err != nil || last != 2 {
		t.Fatalf("contact-1 drew %d numbers (%v), want 2", last, err)
	}
}
