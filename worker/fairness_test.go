package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// keysInOneLane returns n ordering keys that hash to the same lane.
func keysInOneLane(t *testing.T, b bundle, n int) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
SELECT k FROM (SELECT 'key-' || i AS k FROM generate_series(1, 100000) i) s
WHERE (hashtext(k) & 2147483647) % 32 = 7 LIMIT $1`, n)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) != n {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
	return keys
}

// Claims are fair by age: a message an hour old on a long-lived key (at
// sequence 1,000,000) goes out in the first batch, ahead of twenty new keys
// at sequence 1 in the same lane.
func TestClaimsAreFairByAge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	keys := keysInOneLane(t, b, 21)
	old, fresh := keys[0], keys[1:]
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_keys (ordering_key, last_seq) VALUES ($1, 999999)`, old); err != nil {
		t.Fatal(err)
	}
	e, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: old, Payload: []byte(`{"i":0,"key":"old"}`)})
	if err != nil || e.Seq != 1_000_000 {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET created_at = now() - interval '1 hour' WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	for i, k := range fresh {
		if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: k,
			Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i+1, k)}); err != nil {
			t.Fatal(err)
		}
	}
	b.start(t, b.config(t, func(c *worker.Config) { c.BatchSize, c.PerKeyBatch = 5, 1 }))
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 21 {
		t.Fatalf("statuses %v", c)
	}
	reqs := b.sink.Requests()
	for _, r := range reqs[:5] {
		if decode(t, r).I == 0 {
			return
		}
	}
	for i, r := range reqs {
		if decode(t, r).I == 0 {
			t.Fatalf("the hour-old message went out as request %d, after newer keys' first batch", i+1)
		}
	}
}
