package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pendingsql"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// messageReads returns the plan's reads of outbox_messages that are not
// index scans, and how many rows all its reads of outbox_messages produced.
// The dead-letter count may take a bitmap of the dead index: it reads dead
// letters, none of the pending backlog.
func messageReads(p pgtest.Plan) (others []string, rows float64) {
	p.Walk(func(n pgtest.Plan) {
		if n.Relation != "outbox_messages" {
			return
		}
		deadBitmap := n.NodeType == "Bitmap Heap Scan" && len(n.Plans) == 1 && n.Plans[0].Index == "outbox_messages_dead_idx"
		if n.NodeType != "Index Scan" && n.NodeType != "Index Only Scan" && !deadBitmap {
			others = append(others, n.NodeType)
		}
		rows += n.RowsRead()
	})
	return others, rows
}

// explainCollector returns how the collector's query reads outbox_messages:
// the reads that are not index scans, and the rows all of them produced.
func explainCollector(t *testing.T, b serveBundle, c *dbCollector) (others []string, rows float64) {
	t.Helper()
	var raw []byte
	if err := pendingsql.InTx(context.Background(), b.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "EXPLAIN (ANALYZE, FORMAT JSON) "+c.query, c.budget, c.configured).Scan(&raw)
	}); err != nil {
		t.Fatal(err)
	}
	// JIT compilation of this plan took 0.8 s of the scrape's 2 s for a
	// read that runs in milliseconds.
	if strings.Contains(string(raw), `"JIT"`) {
		t.Errorf("the collector's query is JIT-compiled: %s", raw[bytes.Index(raw, []byte(`"JIT"`)):])
	}
	plan, err := pgtest.ParsePlan(raw)
	if err != nil {
		t.Fatal(err)
	}
	return messageReads(plan)
}

func load(t *testing.T, b serveBundle, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := b.pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

// A scrape's cost does not grow with the backlog: on a table never
// analyzed (autovacuum may be off; a freshly filled table has no
// statistics), the collector reads pending messages through the lane
// indexes only, within pendingsql.Budget (64,000) rows for the whole
// scrape, 500 per read and lane for one destination. Past its share a
// read says so (outboxd_pending_capped): the count is a lower bound; the
// oldest age stays exact while each lane has fewer keys and unkeyed
// messages than its share.
func TestDatabaseGaugesReadWithinTheBudget(t *testing.T) {
	t.Parallel()
	if pendingsql.Budget != 64_000 {
		t.Fatalf("docs/operations.md promises a budget of 64,000 rows per scrape, the code has %d", pendingsql.Budget)
	}
	if perRead := pendingsql.Budget / (4 * 32); perRead != 500 {
		t.Fatalf("docs/operations.md promises 500 rows per read and lane for one destination, the budget gives %d", perRead)
	}
	ops := strings.Join(strings.Fields(readFile(t, "../../docs/operations.md")), " ")
	for _, want := range []string{"64,000 rows per scrape", "500 rows per read and lane"} {
		if !strings.Contains(ops, want) {
			t.Errorf("docs/operations.md does not say %q", want)
		}
	}
	b := newServeBundle(t)
	load(t, b,
		// "down": 100,050 keyed messages over 1,000 keys, an hour old, and
		// 2,000 unkeyed ones, the oldest three hours old, retrying in an hour.
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
	)
	c := newDBCollector(b.pool, "outboxd", []string{"crm"}, metricsDBTimeout, testRateLog(t))
	others, rows := explainCollector(t, b, c)
	if len(others) > 0 {
		t.Errorf("the collector reads outbox_messages with %v", others)
	}
	// The budget, plus two probes per destination for the walk.
	if want := float64(pendingsql.Budget + 2*2 + 2); rows > want {
		t.Errorf("the collector read %.0f rows of outbox_messages, want at most %.0f", rows, want)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	g := gauges(t, reg)
	// Two destinations: 250 rows per read and lane. Every lane of "down"
	// holds more than 250 keyed messages (about 31 keys of 100): 32 x 250
	// keyed counted, and the 2,000 unkeyed (about 62 a lane).
	if got, want := g["outboxd_pending_messages{down}"], float64(32*250+2000); got != want {
		t.Errorf("down: %v pending, want %v (keyed counted up to 250 per lane)", got, want)
	}
	if g["outboxd_pending_capped{down}"] != 1 {
		t.Errorf("down: outboxd_pending_capped %v, want 1", g["outboxd_pending_capped{down}"])
	}
	if age := g["outboxd_oldest_pending_age_seconds{down}"]; age < 3*3600 || age > 3*3600+600 {
		t.Errorf("down: oldest %v s, want the unkeyed message three hours old", age)
	}
	if g["outboxd_pending_messages{crm}"] != 30 || g["outboxd_pending_capped{crm}"] != 0 {
		t.Errorf("crm: %v pending (capped %v), want 30, exact", g["outboxd_pending_messages{crm}"], g["outboxd_pending_capped{crm}"])
	}
	if age := g["outboxd_oldest_pending_age_seconds{crm}"]; age < 600 || age > 1200 {
		t.Errorf("crm: oldest %v s, want ten minutes", age)
	}
}

// The budget is the scrape's, not each destination's: ten destinations
// with a backlog each cost what one does (an earlier cap of 100,000 rows
// per destination and kind timed the scrape out from about eight).
func TestDatabaseGaugesShareTheBudgetAcrossDestinations(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	load(t, b, `INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key)
		 SELECT gen_random_uuid(), 'd' || (i % 10), 'k' || (i % 2000), i / 2000 + 1, '\x00', 'k-' || i
		 FROM generate_series(0, 39999) i`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
		 SELECT gen_random_uuid(), 'd' || (i % 10), '\x00', 'u-' || i FROM generate_series(0, 19999) i`)
	c := newDBCollector(b.pool, "outboxd", nil, metricsDBTimeout, testRateLog(t))
	c.budget = 4 * 32 * 10 * 3 // three rows per read and lane for ten destinations
	others, rows := explainCollector(t, b, c)
	if len(others) > 0 {
		t.Errorf("the collector reads outbox_messages with %v", others)
	}
	if want := float64(c.budget + 2*10 + 2); rows > want {
		t.Errorf("ten destinations: the collector read %.0f rows of outbox_messages, want at most %.0f (the budget and the walk)", rows, want)
	}
}

// The reviewer's case (issue 9): 5,000 keyed messages five seconds old
// and one key in lane 31 whose head has been retrying for two hours, read
// within a budget of 1,000 rows. The oldest age is the stuck key's: above
// OutboxdBacklogOld's 900 s (deploy/prometheus/alerts.yml), so the alert
// fires. Likewise an unkeyed message retried for three hours, scheduled
// far ahead behind younger unkeyed messages due now.
func TestOldestPendingAgeSeesEveryLaneWithinTheBudget(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	load(t, b,
		// 50 keys outside lane 31, 100 messages each, five seconds old.
		`CREATE TEMP TABLE keys AS SELECT 'key-' || i AS k FROM generate_series(1, 1000) i
		 WHERE (hashtext('key-' || i) & 2147483647) % 32 <> 31 ORDER BY i LIMIT 50`,
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, created_at)
		 SELECT gen_random_uuid(), 'keyed', k, s, '\x00', k || '-' || s, now() - interval '5 seconds'
		 FROM keys, generate_series(1, 100) s`,
		// The stuck key, in lane 31: its head two hours old, retrying.
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, created_at, next_attempt_at, attempts)
		 SELECT gen_random_uuid(), 'keyed', k, 1, '\x00', k || '-1', now() - interval '2 hours', now() + interval '1 hour', 40
		 FROM (SELECT 'stuck-' || i AS k FROM generate_series(1, 1000) i
		       WHERE (hashtext('stuck-' || i) & 2147483647) % 32 = 31 ORDER BY i LIMIT 1) s`,
		// 5,000 unkeyed due now, and one three hours old, next tried in an hour.
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, created_at)
		 SELECT gen_random_uuid(), 'unkeyed', '\x00', 'u-' || i, now() - interval '5 seconds'
		 FROM generate_series(1, 5000) i`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, created_at, next_attempt_at, attempts)
		 VALUES (gen_random_uuid(), 'unkeyed', '\x00', 'u-old', now() - interval '3 hours', now() + interval '1 hour', 40)`,
	)
	c := newDBCollector(b.pool, "outboxd", nil, metricsDBTimeout, testRateLog(t))
	c.budget = 1000
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	g := gauges(t, reg)
	if g["outboxd_database_up"] != 1 {
		t.Fatalf("outboxd_database_up %v", g["outboxd_database_up"])
	}
	const backlogOld = 900 // OutboxdBacklogOld's threshold
	for dest, want := range map[string]float64{"keyed": 2 * 3600, "unkeyed": 3 * 3600} {
		age := g["outboxd_oldest_pending_age_seconds{"+dest+"}"]
		if age < want || age > want+600 {
			t.Errorf("%s: oldest %v s, want %v (the true oldest)", dest, age, want)
		}
		if age <= backlogOld {
			t.Errorf("%s: oldest %v s: OutboxdBacklogOld (> %d s) would not fire", dest, age, backlogOld)
		}
		if g["outboxd_pending_capped{"+dest+"}"] != 1 {
			t.Errorf("%s: a budget of 1,000 for 5,000 messages, yet outboxd_pending_capped is %v", dest, g["outboxd_pending_capped{"+dest+"}"])
		}
	}
}
