package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A first-try success is recorded on its message's row, not as an attempt
// row (migration 13: no insert, two index entries and a foreign-key check
// less per delivery), and still shows in outbox_attempt_log and
// Outbox.Attempts like any attempt. A message that needed a retry keeps a
// row per attempt, its final success included.
func TestFirstTrySuccessIsRecordedOnTheMessageRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	flaky := &failingFirst{n: 1, fail: func() dispatch.Result {
		return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503}
	}}
	// A success with a remark (a custom destination may give one): the
	// log keeps it, as an attempt row did.
	noted := dispatch.DestinationFunc(func(context.Context, dispatch.Message) dispatch.Result {
		return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 202, Err: errors.New("accepted, queued downstream")}
	})
	var first, retried, remark outbox.Enqueued
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		if first, err = b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "sink", Type: "t", Payload: []byte(`{"a":1}`)}); err != nil {
			return err
		}
		if retried, err = b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "flaky", Type: "t", Payload: []byte(`{"b":2}`)}); err != nil {
			return err
		}
		remark, err = b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "noted", Type: "t", Payload: []byte(`{"c":3}`)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.ID = "dispatcher-one"
		c.Destinations["flaky"] = flaky
		c.Destinations["noted"] = noted
	}))
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 3 {
		t.Fatalf("statuses %v, want all three delivered", c)
	}

	rows := func(id any) (attemptRows, logRows int) {
		t.Helper()
		if err := b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outboxd.outbox_attempts WHERE message_id = $1),
		       (SELECT count(*) FROM outboxd.outbox_attempt_log WHERE message_id = $1)`, id).Scan(&attemptRows, &logRows); err != nil {
			t.Fatal(err)
		}
		return attemptRows, logRows
	}
	if a, l := rows(first.ID); a != 0 || l != 1 {
		t.Fatalf("first-try success: %d attempt rows, %d in the log; want 0 and 1", a, l)
	}
	if a, l := rows(retried.ID); a != 2 || l != 2 {
		t.Fatalf("success on the second try: %d attempt rows, %d in the log; want 2 and 2", a, l)
	}

	got, err := b.outbox.Attempts(ctx, b.pool, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.outbox.Get(ctx, b.pool, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("Attempts: %+v, want one", got)
	}
	a := got[0]
	if a.Number != 1 || a.Outcome != outbox.OutcomeDelivered || a.StatusCode == nil || *a.StatusCode != 200 ||
		a.Error != "" || a.Dispatcher != "dispatcher-one" || a.Duration <= 0 {
		t.Fatalf("the first-try success as an attempt: %+v", a)
	}
	if m.DeliveredAt == nil || a.At.After(*m.DeliveredAt) || m.DeliveredAt.Sub(a.At) > 5*time.Second {
		t.Fatalf("attempt started %s, message delivered %v", a.At, m.DeliveredAt)
	}
	got, err = b.outbox.Attempts(ctx, b.pool, retried.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Outcome != outbox.OutcomeRetry || got[1].Outcome != outbox.OutcomeDelivered || got[1].Number != 2 {
		t.Fatalf("Attempts of the retried message: %+v", got)
	}
	if a, l := rows(remark.ID); a != 0 || l != 1 {
		t.Fatalf("first-try success with a remark: %d attempt rows, %d in the log; want 0 and 1", a, l)
	}
	got, err = b.outbox.Attempts(ctx, b.pool, remark.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Error != "accepted, queued downstream" || got[0].StatusCode == nil || *got[0].StatusCode != 202 {
		t.Fatalf("Attempts of the success with a remark: %+v", got)
	}
}

// The per-delivery budget of issue 9 (at most 2 index entries per
// first-try delivery; docs/benchmarks.md): the delivered row version, an
// update that is never HOT, has an entry in each index that holds it. A
// message Enqueue keyed by its own id: the primary key and the delivered
// index (migration 15 took it out of the key index); with an ordering
// key, the ordering index too; one with the caller's id, the index of keys
// too (migration 16: 3); one caused by an inbox event, its derived key's and
// the cause's indexes too.
func TestAFirstTryDeliveryWritesTwoIndexEntries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	want := map[string]string{}
	for _, c := range []struct {
		m    outbox.Message
		want string
	}{
		{outbox.Message{}, "outbox_messages_delivered_idx outbox_messages_pkey"},
		{outbox.Message{OrderingKey: "contact-1"}, "outbox_messages_delivered_idx outbox_messages_ordering_idx outbox_messages_pkey"},
		{outbox.Message{ID: uuid.Must(uuid.NewV7())}, "outbox_messages_caller_key_idx outbox_messages_delivered_idx outbox_messages_pkey"},
		{outbox.Message{CausedBy: &outbox.EventRef{Source: "stripe", EventID: "evt_1"}},
			"outbox_messages_caller_key_idx outbox_messages_caused_by_idx outbox_messages_delivered_idx outbox_messages_pkey"},
	} {
		c.m.Destination, c.m.Type, c.m.Payload = "sink", "t", []byte(`{}`)
		e, err := b.outbox.Enqueue(ctx, b.pool, c.m)
		if err != nil {
			t.Fatal(err)
		}
		want[e.ID.String()] = c.want
	}
	b.start(t, b.config(t, nil))
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 4 {
		t.Fatalf("statuses %v, want all four delivered", c)
	}
	for id, w := range want {
		if got := pgtest.MessageIndexes(t, b.pool, uuid.MustParse(id)); got != w {
			t.Errorf("delivered message %s is in %s, want %s", id, got, w)
		}
	}
}
