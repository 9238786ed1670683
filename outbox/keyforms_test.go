package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/outbox"
)

// An idempotency key is unique per destination whichever form it is stored
// in (migration 15): a key that is its message's own id is found through
// the primary key, any other through the unique index of given keys. A key
// given as another message's id, and an id given as another message's key,
// find that message; an id taken with another key is refused without
// aborting the caller's transaction.
func TestAKeyIsUniqueInEitherForm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, ordering := range []string{"", "contact-1"} {
		m := msg("email")
		m.OrderingKey = ordering
		made, err := b.outbox.Enqueue(ctx, b.pool, m) // keyed by its own id
		if err != nil {
			t.Fatal(err)
		}
		byKey := m
		byKey.IdempotencyKey = made.ID.String()
		if e, err := b.outbox.Enqueue(ctx, b.pool, byKey); err != nil || !e.Existing || e.ID != made.ID || e.Seq != made.Seq {
			t.Fatalf("ordering %q: a message's id as a given key: %+v %v, want %s", ordering, e, err, made.ID)
		}
		upper := byKey
		upper.IdempotencyKey = strings.ToUpper(made.ID.String()) // not the form id::text takes: another key
		if e, err := b.outbox.Enqueue(ctx, b.pool, upper); err != nil || e.Existing {
			t.Fatalf("ordering %q: the id in capitals is another key: %+v %v", ordering, e, err)
		}

		given := m
		given.IdempotencyKey = uuid.NewString() // a UUID's text, given as a key
		first, err := b.outbox.Enqueue(ctx, b.pool, given)
		if err != nil || first.Existing {
			t.Fatal(first, err)
		}
		asID := m
		asID.ID = uuid.MustParse(given.IdempotencyKey) // keyed by this id, as the key above
		if e, err := b.outbox.Enqueue(ctx, b.pool, asID); err != nil || !e.Existing || e.ID != first.ID || e.Seq != first.Seq {
			t.Fatalf("ordering %q: another message's key as an id: %+v %v, want %s", ordering, e, err, first.ID)
		}
	}
	if n := b.count(t); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}

	// An id that is taken, with another key or for another destination:
	// an error naming both, and the transaction goes on.
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	first, err := b.outbox.Enqueue(ctx, b.pool, msg("email"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []outbox.Message{
		{ID: first.ID, Destination: "email", IdempotencyKey: "another-key", Payload: []byte(`{}`)},
		{ID: first.ID, Destination: "chat", Payload: []byte(`{}`)},
	} {
		_, err := b.outbox.Enqueue(ctx, tx, m)
		if !errors.Is(err, outbox.ErrIDTaken) || !errors.Is(err, outbox.ErrInvalidMessage) ||
			!strings.Contains(err.Error(), "(id "+first.ID.String()+" is a stored message's to destination email; this message: destination "+m.Destination) {
			t.Fatalf("%s to %s with a taken id: %v", m.IdempotencyKey, m.Destination, err)
		}
	}
	// In a batch: the error names the message.
	_, err = b.outbox.EnqueueBatch(ctx, tx, []outbox.Message{msg("email"), {ID: first.ID, Destination: "chat", Payload: []byte(`{}`)}})
	if !errors.Is(err, outbox.ErrIDTaken) || !strings.Contains(err.Error(), "enqueue batch, message 1: ") {
		t.Fatalf("a batch with a taken id: %v", err)
	}
	if e, err := b.outbox.Enqueue(ctx, tx, msg("email")); err != nil || e.Existing {
		t.Fatalf("the transaction after a refused id: %+v %v", e, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.count(t); n != 9 {
		t.Fatalf("%d rows, want 9 (the batch's first message too: its transaction committed)", n)
	}
}

// Two transactions that enqueue one key, in each form a key can take, and
// across the forms (an id given as one message's, its text as another's
// key: migration 16): the second waits for the first (observed in
// pg_stat_activity, not slept for) and, once the first commits, stores
// nothing and returns the first's message.
func TestConcurrentEnqueuesOfAKeyStoreOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cause := &outbox.EventRef{Source: "stripe", EventID: "evt_concurrent"}
	same := func(m outbox.Message) [2]outbox.Message { return [2]outbox.Message{m, m} }
	idThenKey, keyThenID := uuid.Must(uuid.NewV7()), uuid.New()
	for name, pair := range map[string][2]outbox.Message{
		"the caller's id":               same(outbox.Message{ID: uuid.Must(uuid.NewV7())}),
		"a given key":                   same(outbox.Message{IdempotencyKey: "order-7"}),
		"a key derived":                 same(outbox.Message{CausedBy: cause}),
		"a given key, keyed":            same(outbox.Message{IdempotencyKey: "order-8", OrderingKey: "contact-9"}),
		"the caller's id, keyed":        same(outbox.Message{ID: uuid.Must(uuid.NewV7()), OrderingKey: "contact-10"}),
		"an id, then its text as a key": {{ID: idThenKey}, {IdempotencyKey: idThenKey.String()}},
		"a UUID's text as a key, then the UUID as an id": {{IdempotencyKey: keyThenID.String()}, {ID: keyThenID}},
	} {
		for i := range pair {
			pair[i].Destination, pair[i].Type, pair[i].Payload = "email", "email.welcome", []byte(`{}`)
		}
		m := pair[0]
		t1, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, err := b.outbox.Enqueue(ctx, t1, m)
		if err != nil || first.Existing {
			t.Fatalf("%s: %+v %v", name, first, err)
		}
		t2, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		if err := t2.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		type result struct {
			e   outbox.Enqueued
			err error
		}
		second, finished := make(chan result, 1), make(chan struct{})
		go func() {
			defer close(finished)
			e, err := b.outbox.Enqueue(ctx, t2, pair[1])
			second <- result{e, err}
		}()
		// A failure below must not leave t2 waiting on t1 and both
		// connections held (the pool's close would wait for them).
		t.Cleanup(func() {
			_ = t1.Rollback(ctx)
			<-finished
			_ = t2.Rollback(ctx)
		})
		awaitLockWait(t, b, pid, name)
		if err := t1.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-second
		if r.err != nil || !r.e.Existing || r.e.ID != first.ID {
			t.Fatalf("%s, the second transaction: %+v %v, want %s", name, r.e, r.err, first.ID)
		}
		if err := t2.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.count(t); n != 7 {
		t.Fatalf("%d rows, want 7", n)
	}
}

// awaitLockWait returns once the backend pid waits for a lock.
func awaitLockWait(t *testing.T, b bundle, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting bool
		err := b.pool.QueryRow(context.Background(), `SELECT coalesce((SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1), false)`, pid).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the second transaction never waited for the first", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The checked enqueue's ON CONFLICT names no index, so every unique index
// of outbox_messages is its arbiter: a new one would turn its violations
// into "nothing stored" without anyone deciding so. And a conflict on
// (ordering_key, seq), when outbox_keys is behind the key's messages, is
// reported as such, not as a duplicate.
func TestEveryUniqueIndexIsAKnownArbiter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var unique string
	if err := b.pool.QueryRow(ctx, `SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'outboxd.outbox_messages'::regclass AND i.indisunique`).Scan(&unique); err != nil {
		t.Fatal(err)
	}
	if want := "outbox_messages_caller_key_idx outbox_messages_ordering_idx outbox_messages_pkey"; unique != want {
		t.Fatalf("unique indexes of outbox_messages: %s, want %s (outbox/sql.go, checkedRow)", unique, want)
	}
	m := msg("email")
	m.OrderingKey, m.IdempotencyKey = "contact-behind", "order-1"
	if _, err := b.outbox.Enqueue(ctx, b.pool, m); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_keys SET last_seq = 0 WHERE ordering_key = 'contact-behind'`); err != nil {
		t.Fatal(err)
	}
	m.IdempotencyKey = "order-2"
	if _, err := b.outbox.Enqueue(ctx, b.pool, m); err == nil || !strings.Contains(err.Error(), "sequence number is taken") || errors.Is(err, outbox.ErrIDTaken) {
		t.Fatalf("a sequence number taken: %v", err)
	}
}
