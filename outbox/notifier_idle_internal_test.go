package outbox

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// A Notifier that is not running (never started, or stopped) announces
// nothing: Enqueue then NOTIFYs in the enqueueing transaction, as without
// a Notifier, so that dispatchers are still woken at its commit, and the
// Notifier's logger says so once. A trial's messages waited for the
// dispatcher's sweep (18 s of its 20 s) without a word.
func TestEnqueueWithANotifierNotRunningStillWakes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newNotifierBundle(t, nil)
	var log syncbuf.Buffer
	idle, err := NewNotifier(b.n.db, &NotifierConfig{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	never, err := New(&Config{Notifier: idle})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(name string, ob *Outbox, batch bool) {
		t.Helper()
		msgs := []Message{{Destination: "crm", OrderingKey: "a-" + name, Payload: []byte(`{}`)}}
		if batch {
			msgs = append(msgs, Message{Destination: "erp", OrderingKey: "b-" + name, Payload: []byte(`{}`)})
		}
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if batch {
			_, err = ob.EnqueueBatch(ctx, tx, msgs)
		} else {
			_, err = ob.Enqueue(ctx, tx, msgs[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		b.sentinel(t) // nothing announced before the commit
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-b.payloads:
			for _, m := range msgs {
				var lane int16
				if err := b.n.db.QueryRow(ctx, `SELECT lane FROM outboxd.outbox_messages WHERE ordering_key = $1`, m.OrderingKey).Scan(&lane); err != nil {
					t.Fatal(err)
				}
				if !laneBit(t, p, lane, m.Destination) {
					t.Fatalf("%s: announced %q, not lane %d of %s", name, p, lane, m.Destination)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: its commit woke no dispatcher", name)
		}
	}
	commit("never started", never, false)
	commit("never started, batch", never, true)
	if got := strings.Count(log.String(), "Notifier is not running"); got != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", got, log.String())
	}
	if err := b.n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	commit("stopped", b.ob, false)
	commit("stopped, batch", b.ob, true)
}

// An Outbox refuses a Notifier of another schema: it would announce on a
// channel that the schema's dispatchers do not listen to.
func TestNotifierOfAnotherSchemaIsRefused(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/x") // never connects
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	n, err := NewNotifier(pool, &NotifierConfig{Schema: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(&Config{Notifier: n}); err == nil || !strings.Contains(err.Error(), "announces on billing_outbox, for another schema than Config.Schema outboxd") {
		t.Fatalf("default schema with billing's Notifier: %v", err)
	}
	if _, err := New(&Config{Schema: "billing", Notifier: n}); err != nil {
		t.Fatal(err)
	}
}
