package outbox_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/wakeup"
	"github.com/outboxd/outboxd/outbox"
)

type bundle struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
}

func setup(t *testing.T) bundle {
	t.Helper()
	ob, err := outbox.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{pool: pgtest.Pool(t), outbox: ob}
}

func (b bundle) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// begin opens a transaction, rolled back at the end of the test unless it
// committed.
func (b bundle) begin(t *testing.T) pgx.Tx {
	t.Helper()
	tx, err := b.pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func msg(dest string) outbox.Message {
	return outbox.Message{Destination: dest, Type: "email.welcome", Payload: []byte(`{"to":"ada@example.com"}`)}
}

func TestRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := msg("email")
	m.OrderingKey = "contact-1"
	if _, err := b.outbox.Enqueue(ctx, tx, m); err != nil {
		t.Fatal(err)
	}
	if n := b.count(t); n != 0 {
		t.Fatalf("%d messages visible before commit", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.count(t); n != 0 {
		t.Fatalf("%d messages after rollback", n)
	}
	// The sequence a rolled-back enqueue drew is not lost to order: the next
	// committed message for the key is the first one.
	e, err := b.outbox.Enqueue(ctx, b.pool, m)
	if err != nil || e.Seq != 1 {
		t.Fatalf("after rollback: seq %d, %v", e.Seq, err)
	}
}

func TestIDsAreTimeOrderedUUIDv7(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var prev uuid.UUID
	for i := 0; i < 200; i++ {
		e, err := b.outbox.Enqueue(ctx, b.pool, msg("email"))
		if err != nil {
			t.Fatal(err)
		}
		if e.ID.Version() != 7 {
			t.Fatalf("id %s is version %d", e.ID, e.ID.Version())
		}
		if i > 0 && e.ID.String() <= prev.String() {
			t.Fatalf("id %s not after %s", e.ID, prev)
		}
		sec, nsec := e.ID.Time().UnixTime()
		if d := time.Since(time.Unix(sec, nsec)); d < 0 || d > time.Minute {
			t.Fatalf("id time is %s away from now", d)
		}
		prev = e.ID
		// Without a cause, the idempotency key is the message id.
		if e.IdempotencyKey != e.ID.String() {
			t.Fatalf("key %q for id %s", e.IdempotencyKey, e.ID)
		}
	}
}

func TestSameIdempotencyKeyTwiceIsOneRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cause := &outbox.EventRef{Source: "stripe", EventID: "evt_1"}
	m := msg("email")
	m.CausedBy = cause
	m.Headers = http.Header{"X-Trace": {"abc"}}

	first, err := b.outbox.Enqueue(ctx, b.pool, m)
	if err != nil || first.Existing {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := b.outbox.Enqueue(ctx, b.pool, m)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Existing || second.ID != first.ID || second.IdempotencyKey != first.IdempotencyKey {
		t.Fatalf("second: %+v, first %+v", second, first)
	}
	if want := outbox.DeriveIdempotencyKey(*cause, "email.welcome", ""); first.IdempotencyKey != want {
		t.Fatalf("key %s, want derived %s", first.IdempotencyKey, want)
	}
	// A handler that runs again gets the same key: another id, same key.
	m.ID = uuid.Nil
	third, err := b.outbox.Enqueue(ctx, b.pool, m)
	if err != nil || !third.Existing || third.ID != first.ID {
		t.Fatalf("third: %+v %v", third, err)
	}
	// A step name, another type or another destination is another message.
	for _, other := range []outbox.Message{
		{Destination: "email", Type: "email.welcome", Step: "reminder", CausedBy: cause},
		{Destination: "email", Type: "email.receipt", CausedBy: cause},
		{Destination: "chat", Type: "email.welcome", CausedBy: cause},
	} {
		e, err := b.outbox.Enqueue(ctx, b.pool, other)
		if err != nil || e.Existing {
			t.Fatalf("%+v: %+v %v", other, e, err)
		}
	}
	if n := b.count(t); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}
	stored, err := b.outbox.Get(ctx, b.pool, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.CausedBy == nil || *stored.CausedBy != *cause || stored.Headers.Get("X-Trace") != "abc" || stored.Status != "pending" {
		t.Fatalf("stored: %+v", stored)
	}
}

func TestDerivedKeyIsDeterministic(t *testing.T) {
	t.Parallel()
	a := outbox.DeriveIdempotencyKey(outbox.EventRef{Source: "s", EventID: "e"}, "t", "step")
	if a != outbox.DeriveIdempotencyKey(outbox.EventRef{Source: "s", EventID: "e"}, "t", "step") {
		t.Fatal("same inputs, different keys")
	}
	// Parts do not run into each other.
	if a == outbox.DeriveIdempotencyKey(outbox.EventRef{Source: "s", EventID: "et"}, "", "step") {
		t.Fatal("ambiguous join")
	}
	if _, err := uuid.Parse(a); err != nil {
		t.Fatal(err)
	}
}

// Two transactions for one key commit in the reverse order of their ids:
// the sequence follows commit order.
func TestSequenceFollowsCommitOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	early, late := msg("crm"), msg("crm")
	early.OrderingKey, late.OrderingKey = "deal-7", "deal-7"
	early.ID = uuid.Must(uuid.NewV7())
	late.ID = uuid.Must(uuid.NewV7())

	txLate, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eLate, err := b.outbox.Enqueue(ctx, txLate, late)
	if err != nil {
		t.Fatal(err)
	}
	// The transaction with the earlier id waits for the key until txLate ends.
	done := make(chan outbox.Enqueued, 1)
	go func() {
		var e outbox.Enqueued
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			e, err = b.outbox.Enqueue(ctx, tx, early)
			return err
		})
		if err != nil {
			t.Error(err)
		}
		done <- e
	}()
	select {
	case <-done:
		t.Fatal("second enqueuer for the key did not wait for the first to commit")
	case <-time.After(200 * time.Millisecond):
	}
	if err := txLate.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eEarly := <-done
	if eLate.Seq >= eEarly.Seq {
		t.Fatalf("committed first got seq %d, committed second got %d", eLate.Seq, eEarly.Seq)
	}
	if early.ID.String() >= late.ID.String() {
		t.Fatal("test setup: ids not in generation order")
	}
}

// Many concurrent producers on a few keys: per key, sequences are dense and
// their order matches the order in which the transactions committed.
func TestConcurrentProducersCommitOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `CREATE TABLE commits (n bigserial PRIMARY KEY, key text, id uuid)`); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				m := msg("crm")
				m.OrderingKey = keys[(g+i)%len(keys)]
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					e, err := b.outbox.Enqueue(ctx, tx, m)
					if err != nil {
						return err
					}
					// Logged last in the transaction: the key's row lock is
					// still held, so per key this log is in commit order.
					_, err = tx.Exec(ctx, `INSERT INTO commits (key, id) VALUES ($1, $2)`, m.OrderingKey, e.ID)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rows, err := b.pool.Query(ctx, `
SELECT c.key, m.seq FROM commits c JOIN outboxd.outbox_messages m ON m.id = c.id ORDER BY c.n`)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int64{}
	total := 0
	for rows.Next() {
		var key string
		var seq int64
		if err := rows.Scan(&key, &seq); err != nil {
			t.Fatal(err)
		}
		if seq != last[key]+1 {
			t.Fatalf("key %s: seq %d after %d", key, seq, last[key])
		}
		last[key] = seq
		total++
	}
	if rows.Err() != nil || total != 200 {
		t.Fatalf("%d rows, %v", total, rows.Err())
	}
}

func TestBatchEnqueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var msgs []outbox.Message
	for i := 0; i < 10; i++ {
		m := msg("crm")
		m.OrderingKey = []string{"x", "y"}[i%2]
		msgs = append(msgs, m)
	}
	dup := msg("crm")
	dup.IdempotencyKey = "same"
	msgs = append(msgs, dup, dup)

	var out []outbox.Enqueued
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		out, err = b.outbox.EnqueueBatch(ctx, tx, msgs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 12 {
		t.Fatalf("%d results", len(out))
	}
	for i := 0; i < 10; i++ {
		if want := int64(i/2 + 1); out[i].Seq != want {
			t.Fatalf("message %d: seq %d, want %d", i, out[i].Seq, want)
		}
	}
	if out[10].Existing || !out[11].Existing || out[10].ID != out[11].ID {
		t.Fatalf("duplicate key in batch: %+v %+v", out[10], out[11])
	}
	if n := b.count(t); n != 11 {
		t.Fatalf("%d rows, want 11", n)
	}
}

// listen returns a connection that listens on the outbox's channel.
func (b bundle) listen(t *testing.T) *pgxpool.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	if _, err := conn.Exec(ctx, "LISTEN "+b.outbox.NotifyChannel()); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestNotifyAtCommitOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	listener := b.listen(t)
	wait := func(d time.Duration) bool {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		_, err := listener.Conn().WaitForNotification(wctx)
		return err == nil
	}

	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.outbox.Enqueue(ctx, tx, msg("email")); err != nil {
		t.Fatal(err)
	}
	if wait(200 * time.Millisecond) {
		t.Fatal("notified before commit")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if wait(200 * time.Millisecond) {
		t.Fatal("notified after rollback")
	}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.outbox.Enqueue(ctx, tx, msg("email"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !wait(5 * time.Second) {
		t.Fatal("no notification at commit")
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, m := range []outbox.Message{
		{},
		{Destination: "x", CausedBy: &outbox.EventRef{Source: "s"}},
		// Headers that no attempt could send: refused now, not retried
		// until the message dies. The value is never quoted back.
		{Destination: "x", Headers: http.Header{"X-Token": {"s3cr3t\r\nX-Injected: 1"}}},
		{Destination: "x", Headers: http.Header{"Bad Name": {"v"}}},
	} {
		_, err := b.outbox.Enqueue(ctx, b.pool, m)
		if !errors.Is(err, outbox.ErrInvalidMessage) || err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%+v: %v", m, err)
		}
		if _, err := b.outbox.EnqueueBatch(ctx, b.pool, []outbox.Message{{Destination: "x"}, m}); !errors.Is(err, outbox.ErrInvalidMessage) {
			t.Errorf("batch with %+v: %v", m, err)
		}
	}
	if n := b.count(t); n != 0 {
		t.Errorf("%d messages stored by refused enqueues", n)
	}
	if _, err := b.outbox.Get(ctx, b.pool, uuid.Must(uuid.NewV7())); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := outbox.New(&outbox.Config{Schema: "no good"}); err == nil {
		t.Error("bad schema accepted")
	}
}

// Without a Notifier, the enqueueing statement's NOTIFY names the message's
// lane and its destination's bit (internal/wakeup), for every form of the
// statement (keyed or not, with the idempotency-key check or without), in
// Enqueue and EnqueueBatch; dest-41's bit is the 64th of the mask, past
// what a bigint holds.
func TestInlineNotifyNamesLaneAndDestination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	listener := b.listen(t)
	i := 0
	for _, dest := range []string{"email", "dest-41"} {
		for _, shape := range []func(m *outbox.Message){
			func(*outbox.Message) {},
			func(m *outbox.Message) { m.IdempotencyKey = uuid.NewString() },
			func(m *outbox.Message) { m.OrderingKey = uuid.NewString() },
			func(m *outbox.Message) { m.OrderingKey, m.IdempotencyKey = uuid.NewString(), uuid.NewString() },
		} {
			for _, batch := range []bool{false, true} {
				i++
				m := msg(dest)
				shape(&m)
				var id uuid.UUID
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					if batch {
						out, err := b.outbox.EnqueueBatch(ctx, tx, []outbox.Message{m})
						if err == nil {
							id = out[0].ID
						}
						return err
					}
					out, err := b.outbox.Enqueue(ctx, tx, m)
					id = out.ID
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				var lane int
				if err := b.pool.QueryRow(ctx, `SELECT lane FROM outboxd.outbox_messages WHERE id = $1`, id).Scan(&lane); err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				n, err := listener.Conn().WaitForNotification(wctx)
				cancel()
				if err != nil {
					t.Fatalf("message %d: no notification: %v", i, err)
				}
				if lanes, dests := wakeup.Parse(n.Payload); lanes != 1<<lane || dests != wakeup.DestBit(dest) {
					t.Fatalf("message %d to %s: payload %q names lanes %#x of destinations %#x, want lane %d of %#x",
						i, dest, n.Payload, lanes, dests, lane, wakeup.DestBit(dest))
				}
			}
		}
	}
}
