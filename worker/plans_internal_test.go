package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// planNode is the part of EXPLAIN (FORMAT JSON) these tests read.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

// scans lists the plan's nodes that read outbox_messages (not the
// ModifyTable node that writes it).
func (n planNode) scans() []planNode {
	var out []planNode
	if n.Relation == "outbox_messages" && n.NodeType != "ModifyTable" {
		out = append(out, n)
	}
	for _, c := range n.Plans {
		out = append(out, c.scans()...)
	}
	return out
}

func explain(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, opts, sql string, args ...any) planNode {
	t.Helper()
	var raw []byte
	if err := q.QueryRow(context.Background(), "EXPLAIN ("+opts+"FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var out []struct{ Plan planNode }
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
		t.Fatalf("%s: %v", raw, err)
	}
	return out[0].Plan
}

// onlyIndexes fails unless every read of outbox_messages is an index scan
// (or, with bitmaps, a bitmap of index entries: it collects every matching
// entry before a LIMIT applies, so not for claims), and returns how many
// rows those reads produced in all.
func onlyIndexes(t *testing.T, what string, p planNode, bitmaps bool) float64 {
	t.Helper()
	var rows float64
	for _, s := range p.scans() {
		if s.NodeType == "Bitmap Heap Scan" && bitmaps && len(s.Plans) == 1 && s.Plans[0].Index != "" {
			continue
		}
		if s.NodeType != "Index Scan" && s.NodeType != "Index Only Scan" {
			t.Errorf("%s reads outbox_messages with a %s", what, s.NodeType)
		}
		rows += s.Rows * max(s.Loops, 1)
	}
	return rows
}

// backlogLane loads, with INSERT ... SELECT and no ANALYZE (autovacuum may
// be off; a freshly filled table has no statistics), a lane of a failing
// destination: 40 keys with 250 pending messages each, the heads of all but
// the first three waiting for a retry an hour away; unkeyed messages not yet
// due; and 10,000 delivered messages retained. It holds the lane's lease
// (owner "me", token 1) and returns the lane and the three due keys.
func backlogLane(t *testing.T, pool *pgxpool.Pool) (lane int16, due []string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TEMP TABLE k AS
		 SELECT row_number() OVER (ORDER BY i) AS n, 'key-' || i AS k FROM generate_series(1, 5000) i
		 WHERE (hashtext('key-' || i) & 2147483647) % 32 = 7
		 ORDER BY i LIMIT 40`,
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, next_attempt_at, created_at)
		 SELECT gen_random_uuid(), 'sink', k.k, s, convert_to(repeat('x', 300), 'UTF8'), k.k || '-' || s,
		        CASE WHEN s = 1 AND k.n > 3 THEN now() + interval '1 hour' ELSE now() END,
		        now() - interval '1 hour' + (k.n * 1000 + s) * interval '1 ms'
		 FROM k, generate_series(1, 250) s`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, next_attempt_at)
		 SELECT gen_random_uuid(), 'sink', '\x00', 'unkeyed-' || i, now() + interval '1 hour'
		 FROM generate_series(1, 3200) i`,
		`INSERT INTO outboxd.outbox_messages (id, destination, ordering_key, seq, payload, idempotency_key, status, delivered_at)
		 SELECT gen_random_uuid(), 'sink', 'old-' || i, 1, '\x00', 'old-' || i, 'delivered', now()
		 FROM generate_series(1, 10000) i`,
		`INSERT INTO outboxd.outbox_lanes (destination, lane, owner, token, lease_until)
		 VALUES ('sink', 7, 'me', 1, now() + interval '1 hour')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := pool.Query(ctx, `SELECT k FROM k WHERE n <= 3 ORDER BY n`)
	due, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return 7, due
}

// A claim reads the heads of the lane's keys and the messages it returns,
// never the backlog behind them: with 10,000 pending messages in the lane
// (all but three keys waiting for a retry) and 10,000 delivered ones, it
// reads about one row per key plus the batch, through indexes only, on a
// table that was never analyzed.
func TestClaimReadsOnlyKeyHeads(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	lane, due := backlogLane(t, pool)
	claim := dbschema.Render(claimSQL, "outboxd")
	const perKey, batch = 10, 200
	args := []any{"sink", lane, "me", int64(1), perKey, batch}

	plan := explain(t, pool, "ANALYZE, ", claim, args...)
	// 40 head probes (and the one that finds no next key), 30 messages.
	if read := onlyIndexes(t, "the claim", plan, false); read > 2*(41+3*perKey) {
		t.Fatalf("the claim read %.0f rows of outbox_messages for 40 keys and %d due messages", read, 3*perKey)
	}

	rows, err := pool.Query(context.Background(), claim, args...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v/%v", vals[3], vals[4]))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	var want []string
	for _, k := range due {
		for s := 1; s <= perKey; s++ {
			want = append(want, fmt.Sprintf("%s/%d", k, s))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed %v\nwant %v", got, want)
	}
}

// The statements a dispatcher runs all the time keep an index plan on a
// table that was never analyzed: recording a batch finds its rows by
// primary key (an earlier plan hashed every pending row after a bulk
// enqueue), and the sweeps for unserved destinations and for delivered
// messages to purge walk their partial indexes.
func TestHotPathPlansUseIndexesWithoutStatistics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	lane, due := backlogLane(t, pool)
	ctx := context.Background()

	rows, _ := pool.Query(ctx, `SELECT id FROM outboxd.outbox_messages WHERE ordering_key = ANY ($1) AND seq <= 2`, due)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) != 6 {
		t.Fatalf("%d ids, %v", len(ids), err)
	}
	n := len(ids)
	fill := func(v any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	plan := explain(t, tx, "ANALYZE, ", dbschema.Render(recordSQL, "outboxd"), "sink", lane, "me", int64(1),
		ids, fill("delivered"), fill("ok"), fill(int64(0)), fill(""), fill(200), fill(int64(0)), fill(1.0), fill(""))
	if read := onlyIndexes(t, "recording a batch", plan, false); read != float64(n) {
		t.Errorf("recording %d results read %.0f rows of outbox_messages", n, read)
	}
	for _, s := range plan.scans() {
		if s.Index != "outbox_messages_pkey" {
			t.Errorf("recording a batch reads outbox_messages through %s", s.Index)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	onlyIndexes(t, "the unserved-destination sweep", explain(t, pool, "", dbschema.Render(unservedSQL, "outboxd")), false)
	// The purge may take a bitmap of the delivered index: it reads only
	// messages past their retention, the ones it is there to delete.
	onlyIndexes(t, "the delivered purge", explain(t, pool, "", dbschema.Render(purgeDeliveredSQL, "outboxd"), 1000, int64(1000)), true)
}
