package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// When Stop runs out of patience, the batch in hand is still recorded: the
// deliveries that succeeded as delivered (not sent again later), the one
// cut off as an abandoned attempt that does not count against its retries
// (docs/design.md), even with a budget of one attempt.
func TestStopPastItsDeadlineRecordsTheBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	hung := make(chan struct{})
	b.sink.Respond = func(r *http.Request, body []byte) (int, http.Header) {
		if strings.Contains(string(body), `"hang"`) {
			close(hung)
			<-r.Context().Done() // until the dispatcher gives up on it
		}
		return http.StatusOK, nil
	}
	// Eleven keys of one lane: one claim, one batch, one recording.
	keys := keysInOneLane(t, b, 11)
	var msgs []outbox.Message
	for i, k := range keys {
		p := fmt.Sprintf(`{"i":%d,"key":%q}`, i, k)
		if i == 0 {
			p = `{"i":0,"key":"hang"}`
		}
		msgs = append(msgs, outbox.Message{Destination: "sink", OrderingKey: k, Payload: []byte(p)})
	}
	if _, err := b.outbox.EnqueueBatch(ctx, b.pool, msgs); err != nil {
		t.Fatal(err)
	}
	d := b.start(t, b.config(t, func(c *worker.Config) { c.Retry.MaxAttempts = 1 }))
	<-hung
	deadline := time.Now().Add(10 * time.Second)
	for len(b.sink.Accepted()) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 10 quick deliveries arrived", len(b.sink.Accepted()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := d.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want the deadline", err)
	}
	if c := b.counts(t); c["delivered"] != 10 || c["pending"] != 1 {
		t.Fatalf("statuses after Stop %v: the delivered ones must be recorded", c)
	}
	var attempts int
	var outcome string
	if err := b.pool.QueryRow(ctx, `SELECT m.attempts, a.outcome FROM outboxd.outbox_messages m
JOIN outboxd.outbox_attempts a ON a.message_id = m.id WHERE m.status = 'pending'`).Scan(&attempts, &outcome); err != nil {
		t.Fatalf("the cut-off attempt was not recorded: %v", err)
	}
	if attempts != 1 || outcome != "abandoned" {
		t.Fatalf("cut-off message: attempts %d, outcome %q; want 1 abandoned", attempts, outcome)
	}
}

// A graceful stop whose attempt in flight outlasts the lease: the lease is
// renewed until the attempt is recorded, so what the sink accepted is
// recorded as delivered and nothing is sent again; and no attempt starts
// after the stop: the key's other nine messages of the batch stay pending,
// never tried, for the lane's next holder (all ten were sent, one after
// the other, making the stop last the whole batch).
func TestGracefulStopOutlastingTheLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	arrived := make(chan struct{}, 10)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		arrived <- struct{}{}
		time.Sleep(2500 * time.Millisecond) // longer than the lease: the slow destination
		return http.StatusOK, nil
	}
	b.enqueue(t, 10, 10, func(int) string { return "one-key" })
	d := b.start(t, b.config(t, nil)) // LeaseTTL 2 s
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c := b.counts(t); c["delivered"] != 1 || c["pending"] != 9 || len(b.sink.Requests()) != 1 {
		t.Fatalf("statuses %v after %d requests: want the attempt in flight recorded, nothing more sent", c, len(b.sink.Requests()))
	}
	var tried int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages WHERE status = 'pending' AND attempts > 0`).Scan(&tried); err != nil || tried != 0 {
		t.Fatalf("%d pending messages have attempts (%v); the ones never started must have none", tried, err)
	}
}
