package console

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/eventkey"
	"github.com/outboxd/outboxd/internal/pendingsql"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// noStatsTables fills inbox_events and outbox_messages with 50,000 rows
// each by INSERT ... SELECT and never analyzes them (autovacuum is turned
// off on them, as it is on some servers): the planner sees no statistics,
// as on a database loaded in bulk. Rare values are the ones searched.
func noStatsTables(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`ALTER TABLE outboxd.inbox_events SET (autovacuum_enabled = false)`,
		`ALTER TABLE outboxd.outbox_messages SET (autovacuum_enabled = false)`,
		`INSERT INTO outboxd.inbox_events (source, event_id, event_type, received_at, expires_at, payload, refs, status)
		 SELECT 'src' || (g % 3), 'evt-' || g, 'lead.created', now() - g * interval '1 second', now() + interval '7 days',
		        '\x7b7d', jsonb_build_object('email', 'u' || g || '@example.com', 'contact_id', 'c-' || g), 'processed'
		 FROM generate_series(1, 50000) g`,
		// Every second message a first-try success, recorded on its row
		// (migration 13).
		`INSERT INTO outboxd.outbox_messages (id, destination, type, ordering_key, seq, payload, idempotency_key,
		        caused_by_source, caused_by_event_id, status, created_at, delivered_at, first_attempt_at, first_attempt_ms)
		 SELECT gen_random_uuid(), 'dest' || (g % 3), 'email.welcome', 'key-' || g, 1, '\x00', 'idem-' || g,
		        'src' || (g % 3), 'evt-' || g, 'delivered', now() - g * interval '1 second', now() - g * interval '1 second',
		        CASE WHEN g % 2 = 0 THEN now() - g * interval '1 second' END, CASE WHEN g % 2 = 0 THEN 10 END
		 FROM generate_series(1, 50000) g`,
		`ALTER TABLE outboxd.outbox_attempts SET (autovacuum_enabled = false)`,
		`INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome)
		 SELECT id, 1, created_at, 10, 'delivered' FROM outboxd.outbox_messages`,
		// 10,000 older first-try successes keyed by their own ids, as
		// Enqueue keys a message without a key or cause (migration 15:
		// not in the unique index of given keys).
		`INSERT INTO outboxd.outbox_messages (id, destination, type, payload, idempotency_key, status, created_at, delivered_at)
		 SELECT u, 'dest' || (g % 3), 'email.welcome', '\x00', u::text, 'delivered',
		        now() - interval '2 days' - g * interval '1 second', now() - interval '2 days' - g * interval '1 second'
		 FROM (SELECT g, gen_random_uuid() AS u FROM generate_series(1, 10000) g) s`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// explainRows runs EXPLAIN ANALYZE of a search as the store sends it (an
// unnamed statement planned with its arguments) and returns, per table,
// how many rows its scans read, failing on any sequential scan of those
// tables.
func explainRows(t *testing.T, pool *pgxpool.Pool, what, sql string, args ...any) map[string]float64 {
	t.Helper()
	var raw []byte
	err := pool.QueryRow(context.Background(), "EXPLAIN (ANALYZE, FORMAT JSON) "+sql,
		append([]any{customPlan}, args...)...).Scan(&raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	plan, err := pgtest.ParsePlan(raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	read := map[string]float64{}
	plan.Walk(func(n pgtest.Plan) {
		if n.NodeType == "Seq Scan" && (n.Relation == "inbox_events" || n.Relation == "outbox_messages" || n.Relation == "outbox_attempts") {
			t.Errorf("%s reads %s with a sequential scan", what, n.Relation)
		}
		if n.Index == "inbox_events_received_at_idx" {
			read["received_at_idx"] += n.RowsRead()
		}
		if n.Relation != "" {
			read[n.Relation] += n.RowsRead()
		}
	})
	return read
}

// TestSearchPlansWithoutStatistics: every search finds its rows through an
// index lookup, never by walking inbox_events_received_at_idx from the
// newest row until 100 matches turn up (the plan a never-analyzed inbox got:
// it read the whole index for a rare value), nor by a sequential scan.
// Each search reads at most a few thousand rows of 50,000.
func TestSearchPlansWithoutStatistics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	noStatsTables(t, pool)
	st, err := newStore(pool, &Config{Schema: "outboxd", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) *string { return &v }
	// The names are read from refNamesNewest events and refNamesPerSource
	// of each of the 3 sources; the matches are a handful.
	const eventBudget = refNamesNewest + 3*refNamesPerSource + 100
	for _, c := range []struct {
		what  string
		value *string
		name  *string
		nv    *string
		src   *string
		stat  *string
	}{
		{what: "q=event id", value: s("evt-49999")},
		{what: "q=a rare value", value: s("u49999@example.com")},
		{what: "q=a value no event has", value: s("nobody@example.com")},
		{what: "q=NAME=value", name: s("contact_id"), nv: s("c-49999")},
		{what: "q=value&source=", value: s("u49999@example.com"), src: s("src1")},
		{what: "q=value&status=", value: s("u49999@example.com"), stat: s("rejected")},
	} {
		read := explainRows(t, pool, c.what, st.q.eventSearch, c.value, c.name, c.nv, c.src, c.stat,
			nil, nil, 100, nil, nil, forms(c.value)) // $11: the forms of the value as an event id
		if read["received_at_idx"] > refNamesNewest {
			t.Errorf("%s walks inbox_events_received_at_idx: %.0f rows (the names' sample is %d)", c.what, read["received_at_idx"], refNamesNewest)
		}
		if read["inbox_events"] > eventBudget {
			t.Errorf("%s reads %.0f rows of inbox_events, want at most %d", c.what, read["inbox_events"], eventBudget)
		}
	}

	id := uuid.New()
	var ownKey string
	if err := pool.QueryRow(context.Background(), `SELECT idempotency_key FROM outboxd.outbox_messages
		WHERE idempotency_key = id::text ORDER BY created_at LIMIT 1`).Scan(&ownKey); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		f    MessageFilter
	}{
		{"idempotency_key", MessageFilter{IdempotencyKey: "idem-49999"}},
		{"idempotency_key&destination", MessageFilter{IdempotencyKey: "idem-49999", Destination: "dest1"}},
		{"idempotency_key&status", MessageFilter{IdempotencyKey: "idem-49999", Status: "dead"}},
		{"idempotency_key that is an id", MessageFilter{IdempotencyKey: ownKey}},
		{"idempotency_key that is an id&destination", MessageFilter{IdempotencyKey: ownKey, Destination: "dest1"}},
		{"ordering_key", MessageFilter{OrderingKey: "key-49999"}},
		{"caused_by", MessageFilter{CausedBy: &outbox.EventRef{Source: "src1", EventID: "evt-49999"}}},
		{"ids", MessageFilter{IDs: []uuid.UUID{id}}},
	} {
		q, args := st.messageQuery(c.f)
		read := explainRows(t, pool, c.what, q, args...)
		// The destinations are found by skipping along the unique index:
		// one probe each, and the match.
		if read["outbox_messages"] > 10 {
			t.Errorf("messages by %s read %.0f rows of outbox_messages, want a few", c.what, read["outbox_messages"])
		}
	}
}

// TestDestinationsPlanWithoutStatistics: the destinations page reads the
// last hour's attempts through their attempted_at index, not every attempt
// kept (it scanned outbox_attempts once per destination: 688 ms at 300k
// messages), and the backlog through the lane indexes (no sequential scan
// of outbox_messages: there is no index on pending creation times).
func TestDestinationsPlanWithoutStatistics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	noStatsTables(t, pool)
	st, err := newStore(pool, &Config{Schema: "outboxd"})
	if err != nil {
		t.Fatal(err)
	}
	// 50,000 attempts, the newest 3,600 of the last hour.
	read := explainRows(t, pool, "destinations", st.q.destinations, pendingsql.Budget)
	if read["outbox_attempts"] > 3601 {
		t.Errorf("destinations read %.0f attempts, want only the last hour's (3,600)", read["outbox_attempts"])
	}
	// Messages: a primary-key probe per attempt of the last hour and the
	// last hour's deliveries through the delivered index (first-try
	// successes have no attempt row), never the 50,000.
	if read["outbox_messages"] > 3600+3600+100 {
		t.Errorf("destinations read %.0f rows of outbox_messages, want the last hour's only", read["outbox_messages"])
	}
}

// forms is store.events' $11 for a search value v (nil without one).
func forms(v *string) []string {
	if v == nil {
		return nil
	}
	return eventkey.Forms(*v)
}

// A search by a reference's value tries the names the newest 1,000
// events and 200 of each source use (docs/operations.md, docs/design.md).
func TestRefNamesBounds(t *testing.T) {
	if refNamesNewest != 1000 || refNamesPerSource != 200 {
		t.Errorf("the code reads the names of the newest %d events and %d per source; the docs say 1,000 and 200", refNamesNewest, refNamesPerSource)
	}
}
