package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pendingsql"
)

// planNode is the part of EXPLAIN (FORMAT JSON) this test reads.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

// messageReads returns the plan's reads of outbox_messages that are not
// index scans, and how many rows all its reads of outbox_messages produced.
// The dead-letter count may take a bitmap of the dead index: it reads dead
// letters, none of the pending backlog.
func (n planNode) messageReads() (others []string, rows float64) {
	if n.Relation == "outbox_messages" {
		deadBitmap := n.NodeType == "Bitmap Heap Scan" && len(n.Plans) == 1 && n.Plans[0].Index == "outbox_messages_dead_idx"
		if n.NodeType != "Index Scan" && n.NodeType != "Index Only Scan" && !deadBitmap {
			others = append(others, n.NodeType)
		}
		rows += n.Rows * max(n.Loops, 1)
	}
	for _, c := range n.Plans {
		o, r := c.messageReads()
		others, rows = append(others, o...), rows+r
	}
	return others, rows
}

// A scrape's cost does not grow with the backlog: on a table never
// analyzed (autovacuum may be off; a freshly filled table has no
// statistics), the collector reads pending messages through the lane
// indexes only, at most pendingsql.Cap (100,000) of each kind per
// destination, and says so: the count stops at the cap, the oldest age is
// exact below it.
func TestDatabaseGaugesReadAtMostTheCapOfABacklog(t *testing.T) {
	t.Parallel()
	if pendingsql.Cap != 100_000 {
		t.Fatalf("docs/operations.md and docs/configuration.md promise a cap of 100,000, the code has %d", pendingsql.Cap)
	}
	b := newServeBundle(t)
	ctx := context.Background()
	for _, q := range []string{
		// "down": the cap and 50 more keyed messages over 1,000 keys, and
		// 2,000 unkeyed ones, the oldest three hours old.
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, created_at)
		 SELECT gen_random_uuid(), 'down', 'k' || (i % 1000), i / 1000 + 1, '\x00', 'k-' || i, now() - interval '1 hour'
		 FROM generate_series(0, 100049) i`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, created_at, next_attempt_at)
		 SELECT gen_random_uuid(), 'down', '\x00', 'u-' || i, now() - interval '3 hours' + i * interval '1 second', now() + interval '1 hour'
		 FROM generate_series(0, 1999) i`,
		// "crm": 30 unkeyed, the oldest ten minutes old.
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, created_at)
		 SELECT gen_random_uuid(), 'crm', '\x00', 'c-' || i, now() - interval '10 minutes' + i * interval '1 second'
		 FROM generate_series(0, 29) i`,
		// Retained deliveries, which no pending read may visit.
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, status, delivered_at)
		 SELECT gen_random_uuid(), 'crm', '\x00', 'd-' || i, 'delivered', now()
		 FROM generate_series(0, 19999) i`,
	} {
		if _, err := b.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c := newDBCollector(b.pool, "outboxd", []string{"crm"}, metricsDBTimeout, testRateLog(t))

	var raw []byte
	if err := b.pool.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+c.query, c.cap, c.configured).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct{ Plan planNode }
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("%s: %v", raw, err)
	}
	others, rows := plan[0].Plan.messageReads()
	if len(others) > 0 {
		t.Errorf("the collector reads outbox_messages with %v", others)
	}
	// The capped reads, plus a few probes per destination for the walk.
	if want := float64(pendingsql.Cap + 2000 + 30 + 20); rows > want {
		t.Errorf("the collector read %.0f rows of outbox_messages, want at most %.0f", rows, want)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	g := gauges(t, reg)
	if got, want := g["outboxd_pending_messages{down}"], float64(pendingsql.Cap+2000); got != want {
		t.Errorf("down: %v pending, want %v (keyed counted up to %d)", got, want, pendingsql.Cap)
	}
	if age := g["outboxd_oldest_pending_age_seconds{down}"]; age < 3*3600 || age > 3*3600+600 {
		t.Errorf("down: oldest %v s, want the unkeyed message three hours old", age)
	}
	if g["outboxd_pending_messages{crm}"] != 30 {
		t.Errorf("crm: %v pending, want 30", g["outboxd_pending_messages{crm}"])
	}
	if age := g["outboxd_oldest_pending_age_seconds{crm}"]; age < 600 || age > 1200 {
		t.Errorf("crm: oldest %v s, want ten minutes", age)
	}
}
