package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

func TestPurgeRemovesExpiredKeysAndOldDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, q := range []string{
		// 2500 expired inbox keys, 10 live ones.
		`INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload)
		 SELECT 'old', 'e' || g, now() - interval '1 hour', '' FROM generate_series(1, 2500) g`,
		`INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload)
		 SELECT 'live', 'e' || g, now() + interval '1 hour', '' FROM generate_series(1, 10) g`,
	} {
		if _, err := b.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_failures (source, event_id, kind, reason, status_code, last_at)
		VALUES ('s', 'old', 'failed', 'x', 503, now() - interval '8 days'), ('s', 'new', 'failed', 'x', 503, now())`); err != nil {
		t.Fatal(err)
	}
	b.enqueue(t, 30, 30, func(int) string { return "" })
	// 20 delivered long ago (with an attempt row each), 10 delivered just now.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'delivered', delivered_at = now() - interval '8 days'
		WHERE id IN (SELECT id FROM outboxd.outbox_messages ORDER BY id LIMIT 20)`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'delivered', delivered_at = now() WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome)
		SELECT id, 1, now(), 1, 'delivered' FROM outboxd.outbox_messages`); err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(b.pool, b.config(t, func(c *worker.Config) {
		c.DisableRiver = true
		c.Maintenance.BatchSize = 1000
	}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Purge(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.InboxKeys != 2500 || res.DeliveredMessages != 20 || res.Failures != 1 {
		t.Fatalf("purged %+v, want 2500 inbox keys, 20 messages and 1 failure row", res)
	}
	var inbox, msgs, attempts int
	if err := b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outboxd.inbox_events), (SELECT count(*) FROM outboxd.outbox_messages), (SELECT count(*) FROM outboxd.outbox_attempts)`).Scan(&inbox, &msgs, &attempts); err != nil {
		t.Fatal(err)
	}
	if inbox != 10 || msgs != 10 || attempts != 10 {
		t.Fatalf("left: %d inbox keys, %d messages, %d attempts; want 10 each", inbox, msgs, attempts)
	}
}

// A dispatcher runs the purge by itself, every Maintenance.Interval.
func TestDispatcherRunsMaintenance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload)
		SELECT 'old', 'e' || g, now() - interval '1 hour', '' FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, func(c *worker.Config) { c.Maintenance.Interval = time.Second }))
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.inbox_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d expired keys left after 30 s", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
