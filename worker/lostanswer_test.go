package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A recording that committed but whose answer was lost (the connection
// broken after the commit) is tried again without storing its results a
// second time: a retry's attempt counted twice (its budget used up one
// attempt early, two attempt rows), and a delivered message's second
// recording refused and logged as sent again, which it was not (a
// review's).
func TestARecordingWhoseAnswerWasLostIsNotStoredTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		calls = map[uuid.UUID]int{}
	)
	dest := dispatch.DestinationFunc(func(_ context.Context, m dispatch.Message) dispatch.Result {
		mu.Lock()
		defer mu.Unlock()
		calls[m.ID]++
		if string(m.Payload) == "fails once" && calls[m.ID] == 1 {
			return dispatch.Result{Outcome: dispatch.Retry, StatusCode: 500}
		}
		return dispatch.Result{Outcome: dispatch.Delivered, StatusCode: 200}
	})
	var logs syncbuf.Buffer
	cfg := b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	b.startWith(t, cfg, func(d *worker.Dispatcher) { worker.LoseRecordingAnswers(d, 2) })
	var ids []uuid.UUID
	for _, p := range []string{"fails once", "delivered"} {
		e, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", Payload: []byte(p)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 2 {
		t.Fatalf("statuses %v", c)
	}
	for i, want := range []struct{ attempts, rows, sends int }{{2, 2, 2}, {1, 0, 1}} {
		var attempts, rows int
		if err := b.pool.QueryRow(ctx, `SELECT attempts, (SELECT count(*) FROM outboxd.outbox_attempts WHERE message_id = $1)
FROM outboxd.outbox_messages WHERE id = $1`, ids[i]).Scan(&attempts, &rows); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		sends := calls[ids[i]]
		mu.Unlock()
		if attempts != want.attempts || rows != want.rows || sends != want.sends {
			t.Errorf("message %d: %d attempts, %d attempt rows, sent %d times; want %d, %d, %d",
				i, attempts, rows, sends, want.attempts, want.rows, want.sends)
		}
	}
	if out := logs.String(); strings.Contains(out, "no longer ours") || !strings.Contains(out, "tried again after a backoff") {
		t.Errorf("log:\n%s", out)
	}
}
