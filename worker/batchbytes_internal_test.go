package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// A claim stops each of its parts (keyed, unkeyed) at Config.BatchBytes,
// counting a payload's full length even when it is stored compressed: a
// lane of 300 kB messages gives four of each kind per claim under the
// default 1 MiB, where it gave all of them (a claim of 200 messages of
// 1 MiB held 200 MiB), a key's messages still in sequence, and the runner
// claims again at once. A message larger than the bound goes alone.
func TestClaimStopsAtBatchBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	execAll(t, pool,
		`CREATE TEMP TABLE k AS
		 SELECT row_number() OVER (ORDER BY i) AS n, 'key-' || i AS k FROM generate_series(1, 5000) i
		 WHERE (hashtext('key-' || i) & 2147483647) % 32 = 7 ORDER BY i LIMIT 2`,
		// Two keys of five 300,000-byte messages each (compressible: stored
		// in a few kB), the first key's head the oldest.
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, created_at)
		 SELECT gen_random_uuid(), 'sink', k.k, s, convert_to(repeat('x', 300000), 'UTF8'), k.k || '-' || s,
		        now() - interval '1 hour' + (k.n * 100 + s) * interval '1 ms'
		 FROM k, generate_series(1, 5) s`,
		// Six unkeyed ones in the same lane.
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, next_attempt_at)
		 SELECT u, 'sink', convert_to(repeat('y', 300000), 'UTF8'), 'unkeyed-' || u, now() - interval '1 minute'
		 FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, 2000)) s
		 WHERE (hashtext(u::text) & 2147483647) % 32 = 7 LIMIT 6`,
		`INSERT INTO outboxd.outbox_lanes (destination, lane, owner, token, lease_until)
		 VALUES ('sink', 7, 'me', 1, now() + interval '1 hour')`,
	)
	var stored int64
	if err := pool.QueryRow(ctx, `SELECT max(pg_column_size(payload)) FROM outboxd.outbox_messages`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored > 100_000 {
		t.Fatalf("a payload takes %d bytes as stored; the test wants it compressed", stored)
	}
	var keys []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(k ORDER BY n) FROM k`).Scan(&keys); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name          string
		bytes         int64
		keyed         []string
		unkeyed       int
		fullK, fullUn bool
		cutKeys       []string // the keys left out, which the next claim takes by name
	}{
		{"default 1 MiB", 0, []string{keys[0] + "/1", keys[0] + "/2", keys[0] + "/3", keys[0] + "/4"}, 4, true, true, keys},
		{"10 MiB: all", 10 << 20, []string{keys[0] + "/1", keys[0] + "/2", keys[0] + "/3", keys[0] + "/4", keys[0] + "/5",
			keys[1] + "/1", keys[1] + "/2", keys[1] + "/3", keys[1] + "/4", keys[1] + "/5"}, 6, false, false, nil},
		{"smaller than one message", 100_000, []string{keys[0] + "/1"}, 1, true, true, keys},
	} {
		t.Run(c.name, func(t *testing.T) {
			batch, full, cut := claimLane7(t, pool, c.bytes)
			if fmt.Sprint(cut.keys) != fmt.Sprint(c.cutKeys) {
				t.Errorf("keys left out %v, want %v", cut.keys, c.cutKeys)
			}
			var keyed []string
			unkeyed := 0
			for _, m := range batch {
				if len(m.Payload) != 300000 {
					t.Errorf("message %s: payload of %d bytes, want 300000", m.ID, len(m.Payload))
				}
				if m.OrderingKey == "" {
					unkeyed++
					continue
				}
				keyed = append(keyed, fmt.Sprintf("%s/%d", m.OrderingKey, m.Seq))
			}
			if fmt.Sprint(keyed) != fmt.Sprint(c.keyed) || unkeyed != c.unkeyed {
				t.Errorf("claimed keyed %v and %d unkeyed\nwant %v and %d", keyed, unkeyed, c.keyed, c.unkeyed)
			}
			if full != [2]bool{c.fullK, c.fullUn} {
				t.Errorf("full (keyed, unkeyed) = %v, want %v: a cut claim must be followed at once", full, [2]bool{c.fullK, c.fullUn})
			}
		})
	}
}

// claimLane7 runs a runner's claim (a walk) of lane 7 of "sink" under the
// lease of owner "me", token 1, with Config.BatchBytes bytes (0: the
// default), and returns the batch, what full says of it and what the
// byte bound left out.
func claimLane7(t *testing.T, pool *pgxpool.Pool, bytes int64) ([]claimed, [2]bool, claimCut) {
	t.Helper()
	d, err := New(pool, &Config{ID: "me", BatchBytes: bytes, DisableRiver: true,
		Destinations: map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(func(context.Context, dispatch.Message) dispatch.Result {
			return dispatch.Result{Outcome: dispatch.Delivered}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	r := &laneRunner{d: d, key: Lane{Destination: "sink", Lane: 7}, token: 1}
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	batch, err := r.claimRows(context.Background(), conn, true)
	if err != nil {
		t.Fatal(err)
	}
	keyed, unkeyed := r.full(batch)
	return batch, [2]bool{keyed, unkeyed}, r.cut
}

// Headers count at their size as text when stored compressed: three
// messages with 2 MB of repetitive headers each (some 20 kB as stored)
// are three claims under the default 1 MiB, not one.
func TestClaimCountsCompressedHeadersInFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	execAll(t, pool,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, headers, idempotency_key, next_attempt_at)
		 SELECT u, 'sink', '\x7b7d', jsonb_build_object('X-Pad', jsonb_build_array(repeat('h', 2000000))), 'unkeyed-' || u, now() - interval '1 minute'
		 FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, 2000)) s
		 WHERE (hashtext(u::text) & 2147483647) % 32 = 7 LIMIT 3`,
		`INSERT INTO outboxd.outbox_lanes (destination, lane, owner, token, lease_until)
		 VALUES ('sink', 7, 'me', 1, now() + interval '1 hour')`,
	)
	var stored int64
	if err := pool.QueryRow(ctx, `SELECT max(pg_column_size(headers)) FROM outboxd.outbox_messages`).Scan(&stored); err != nil || stored > 200_000 {
		t.Fatalf("headers stored in %d bytes (%v); the test wants them compressed", stored, err)
	}
	batch, full, cut := claimLane7(t, pool, 0)
	if len(batch) != 1 || len(batch[0].Headers.Get("X-Pad")) != 2000000 || cut.unkeyedRows != 2 || !full[1] {
		t.Fatalf("claimed %d messages, %d left out, full %v; want 1 (its headers whole), 2, unkeyed full", len(batch), cut.unkeyedRows, full)
	}
}

// execAll runs each statement on pool.
func execAll(t *testing.T, pool *pgxpool.Pool, statements ...string) {
	t.Helper()
	for _, q := range statements {
		if _, err := pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}
