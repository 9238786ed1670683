package outbox

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// The statements that check a key find it through an index, in both of
// its forms, on a table the planner has no statistics for (loaded in bulk,
// never analyzed, as on a server without autovacuum), with the plan made
// for the arguments and with a generic one (a prepared statement's after
// five runs). Since migration 16 the statements of a producer that has not
// looked for caller_id yet (caller false) too: the index's predicate is
// implied by theirs.
func TestKeyChecksUseIndexesWithoutStatistics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	for _, q := range []string{
		`ALTER TABLE outboxd.outbox_messages SET (autovacuum_enabled = false)`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, caller_id)
		 SELECT u, 'dest' || (g % 3), '\x00', CASE WHEN g % 2 = 0 THEN u::text ELSE 'key-' || g END, g % 4 = 0
		 FROM (SELECT g, gen_random_uuid() AS u FROM generate_series(1, 50000) g) s`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	o, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "0193a4c2-0000-7000-8000-000000000002"
	for _, form := range []struct {
		key, id string
		caller  bool
	}{{"key-7", "", false}, {"0193a4c2-0000-7000-8000-000000000001", "", false}, {"", id, true}, {"", id, false}} {
		key := form.key
		m := Message{Destination: "dest1", Payload: []byte(`{}`), IdempotencyKey: key}
		if form.id != "" {
			m.ID, key = uuid.MustParse(form.id), form.id
		}
		for _, ordering := range []string{"", "contact-1"} {
			m.OrderingKey = ordering
			sql, checked := o.statement(&m, form.caller)
			args, err := o.args(&m, checked)
			if err != nil || !checked {
				t.Fatal(checked, err)
			}
			for _, mode := range []string{"auto", "force_generic_plan"} {
				what := fmt.Sprintf("enqueue of key %s (caller's id %v), ordering key %s, %s", key, form.caller, ordering, mode)
				noSeqScan(t, pool, mode, what, sql, args...)
				noSeqScan(t, pool, mode, "existing "+what, o.existing, m.Destination, m.IdempotencyKey, keyAsID(key))
			}
		}
	}
}

// noSeqScan fails if EXPLAIN shows a sequential scan of outbox_messages.
// The statement is prepared and explained, not run, on a connection whose
// plan_cache_mode is mode.
func noSeqScan(t *testing.T, pool *pgxpool.Pool, mode, what, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	params := make([]string, len(args))
	for i := range args {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	var raw []byte
	err = conn.QueryRow(ctx, `SELECT set_config('plan_cache_mode', $1, false)`, mode).Scan(new(string))
	if err == nil {
		_, err = conn.Exec(ctx, "PREPARE plan_probe AS "+sql)
	}
	if err == nil {
		// EXECUTE's arguments cannot be bound: pgx writes them as literals.
		err = conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE plan_probe("+strings.Join(params, ", ")+")",
			append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...).Scan(&raw)
	}
	_, _ = conn.Exec(ctx, "DEALLOCATE plan_probe")
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	plan, err := pgtest.ParsePlan(raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	plan.Walk(func(n pgtest.Plan) {
		if n.NodeType == "Seq Scan" && n.Relation == "outbox_messages" {
			t.Errorf("%s reads outbox_messages with a sequential scan", what)
		}
	})
}
