package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/outbox"
)

// Re-enqueueing an idempotency key that is stored draws no sequence number:
// the key's next message follows without a hole.
func TestReEnqueueLeavesNoSequenceHole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first := msg("crm")
	first.OrderingKey, first.IdempotencyKey = "deal-1", "first"
	for i, want := range []struct {
		seq      int64
		existing bool
	}{{1, false}, {1, true}} {
		e, err := b.outbox.Enqueue(ctx, b.pool, first)
		if err != nil || e.Seq != want.seq || e.Existing != want.existing {
			t.Fatalf("enqueue %d: %+v %v, want seq %d existing %v", i, e, err, want.seq, want.existing)
		}
	}
	next := msg("crm")
	next.OrderingKey = "deal-1"
	e, err := b.outbox.Enqueue(ctx, b.pool, next)
	if err != nil || e.Seq != 2 {
		t.Fatalf("next message of the key: %+v %v, want seq 2", e, err)
	}
}

// Two batches that take the same ordering keys, and the same idempotency
// keys, in opposite orders, at once, many times: sorted statements mean
// neither ever deadlocks (SQLSTATE 40P01).
func TestConcurrentBatchesInOppositeKeyOrderDoNotDeadlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d", "e", "f"}
	round := 0
	var mu sync.Mutex
	batch := func(reverse bool) []outbox.Message {
		mu.Lock()
		round++
		r := round / 2 // both goroutines' batches of a round share idempotency keys
		mu.Unlock()
		var msgs []outbox.Message
		for i := range keys {
			k := keys[i]
			if reverse {
				k = keys[len(keys)-1-i]
			}
			m := msg("crm")
			m.OrderingKey = k
			msgs = append(msgs, m)
			// And unkeyed messages with the same idempotency keys in
			// opposite orders: they wait on the unique index instead.
			u := msg("crm")
			u.IdempotencyKey = fmt.Sprintf("r%d-%s", r, k)
			msgs = append(msgs, u)
		}
		return msgs
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					_, err := b.outbox.EnqueueBatch(ctx, tx, batch(g == 1))
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			t.Fatalf("deadlock between batches: %v", err)
		}
		t.Fatal(err)
	}
	if n := b.count(t); n < 2*40*len(keys) {
		t.Fatalf("%d messages stored", n)
	}
}

// EnqueueBatch keeps slice order in its results and sequence numbers while
// running its statements sorted, and leaves the caller's slice as it was.
func TestEnqueueBatchKeepsSliceOrderAndDoesNotModifyInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var msgs []outbox.Message
	for i, k := range []string{"z", "a", "z", "", "a"} {
		m := msg("crm")
		m.OrderingKey = k
		m.Payload = fmt.Appendf(nil, `{"i":%d}`, i)
		msgs = append(msgs, m)
	}
	out, err := b.outbox.EnqueueBatch(ctx, b.pool, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{1, 1, 2, 0, 2} {
		if out[i].Seq != want {
			t.Fatalf("message %d (key %q): seq %d, want %d", i, msgs[i].OrderingKey, out[i].Seq, want)
		}
		stored, err := b.outbox.Get(ctx, b.pool, out[i].ID)
		if err != nil || string(stored.Payload) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("result %d names message %+v, %v", i, stored, err)
		}
	}
	for i, m := range msgs {
		if m.ID != [16]byte{} || m.IdempotencyKey != "" {
			t.Fatalf("caller's message %d was modified: id %s key %q", i, m.ID, m.IdempotencyKey)
		}
	}
}
