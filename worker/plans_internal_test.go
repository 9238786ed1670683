package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pendingsql"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// planNode is a plan node as these tests read it.
type planNode = pgtest.Plan

// scans lists the plan's nodes that read outbox_messages (not the
// ModifyTable node that writes it).
func scans(p planNode) []planNode {
	var out []planNode
	p.Walk(func(n planNode) {
		if n.Relation == "outbox_messages" && n.NodeType != "ModifyTable" {
			out = append(out, n)
		}
	})
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
	plan, err := pgtest.ParsePlan(raw)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// onlyIndexes fails unless every read of outbox_messages is an index scan
// (or, with bitmaps, a bitmap of index entries: it collects every matching
// entry before a LIMIT applies, so not for claims), and returns how many
// rows those reads produced in all.
func onlyIndexes(t *testing.T, what string, p planNode, bitmaps bool) float64 {
	t.Helper()
	var rows float64
	for _, s := range scans(p) {
		if s.NodeType == "Bitmap Heap Scan" && bitmaps && len(s.Plans) == 1 && s.Plans[0].Index != "" {
			continue
		}
		if s.NodeType != "Index Scan" && s.NodeType != "Index Only Scan" {
			t.Errorf("%s reads outbox_messages with a %s", what, s.NodeType)
		}
		rows += s.RowsRead()
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
	args := []any{"sink", lane, "me", int64(1), perKey, batch, int64(DefaultBatchBytes)}

	plan := explain(t, pool, "ANALYZE, ", claim, args...)
	// 40 head probes (and the one that finds no next key), 30 messages.
	if read := onlyIndexes(t, "the claim", plan, false); read > 2*(41+3*perKey) {
		t.Fatalf("the claim read %.0f rows of outbox_messages for 40 keys and %d due messages", read, 3*perKey)
	}

	got := claimedKeys(t, pool, claim, args...)
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

// A claim reads the payloads of the messages it returns only: the keys'
// candidates (up to per-key x batch of them) are carried as ids, and the
// batch kept is read by primary key. Here three due keys offer 30
// candidates for a batch of 5.
func TestClaimReadsPayloadsOfTheBatchOnly(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	lane, _ := backlogLane(t, pool)
	const perKey, batch = 10, 5
	plan := explain(t, pool, "ANALYZE, VERBOSE, ", dbschema.Render(claimSQL, "outboxd"), "sink", lane, "me", int64(1), perKey, batch, int64(DefaultBatchBytes))
	var withPayload float64
	for _, s := range scans(plan) {
		for _, col := range s.Output {
			if strings.HasSuffix(col, ".payload") {
				withPayload += s.RowsRead()
				break
			}
		}
	}
	if withPayload > batch {
		t.Fatalf("the claim read %.0f payloads for a batch of %d", withPayload, batch)
	}
}

// The statements a dispatcher runs all the time keep an index plan on a
// table that was never analyzed: recording a batch finds its rows by
// primary key (an earlier plan hashed every pending row after a bulk
// enqueue), the sweep for unserved destinations walks the lane indexes and
// stops counting at its cap, and the sweep for delivered messages to purge
// walks its partial index.
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
		ids, fill("delivered"), fill("ok"), fill(int64(0)), fill(""), fill(200), fill(int64(0)), fill(1.0), fill(""), fill(int32(0)))
	if read := onlyIndexes(t, "recording a batch", plan, false); read != float64(n) {
		t.Errorf("recording %d results read %.0f rows of outbox_messages", n, read)
	}
	for _, s := range scans(plan) {
		if s.Index != "outbox_messages_pkey" {
			t.Errorf("recording a batch reads outbox_messages through %s", s.Index)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// No dispatcher serves "sink": the sweep counts its 10,000 keyed and
	// 3,200 unkeyed pending messages, here up to a cap of 1,000 each, in
	// index order, stopping at the cap.
	const unservedCap = 1000
	// Through pendingsql.InTx, as checkUnserved runs it: without JIT (its
	// compilation took 0.8 s of a read of milliseconds).
	var unserved planNode
	if err := pendingsql.InTx(ctx, pool, func(tx pgx.Tx) error {
		var raw []byte
		if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+dbschema.Render(unservedSQL, "outboxd"), unservedCap).Scan(&raw); err != nil {
			return err
		}
		if strings.Contains(string(raw), `"JIT"`) {
			t.Errorf("the unserved-destination sweep is JIT-compiled")
		}
		unserved = explain(t, tx, "ANALYZE, ", dbschema.Render(unservedSQL, "outboxd"), unservedCap)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if read := onlyIndexes(t, "the unserved-destination sweep", unserved, false); read > 2*unservedCap+10 {
		t.Errorf("the unserved-destination sweep read %.0f rows of outbox_messages, want at most %d and a few probes", read, 2*unservedCap)
	}
	// The delivered purge runs under indexPlanSQL (beginIndexPlan): on this
	// never-analyzed table the planner would otherwise sort a bitmap of
	// every retained message. 10,000 are past a retention of 0; a batch of
	// 1,000 reads 1,000 of them, in the delivered index's order.
	purge := dbschema.Render(purgeDeliveredSQL, "outboxd")
	purgeTx, err := beginIndexPlan(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = purgeTx.Rollback(ctx) }()
	purgePlan := explain(t, purgeTx, "ANALYZE, ", purge, 1000, int64(0))
	checkPurgePlan(t, "the delivered purge", purgePlan)
	if err := purgeTx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The same statements as prepared statements reuse them after five
	// executions: a generic plan, chosen without the parameters' values.
	// They keep their index plans and their bounds. Claims and recordings
	// always run on theirs (queryGeneric): every form of the claim, and
	// the recording, which finds its rows by primary key.
	const perKey, batch = 10, 200
	claimArgs := []any{"sink", lane, "me", int64(1), perKey, batch, int64(DefaultBatchBytes)}
	noIDs := []string{}
	for _, c := range []struct {
		what, sql string
		more      []any
	}{
		{"the generic claim", claimSQL, nil},
		{"the generic claim of retries", claimRetriesSQL, []any{due}},
		{"the generic claim around stragglers", claimAround(claimTmpl, 8), []any{due[:1], noIDs}},
		{"the generic claim of retries around stragglers", claimAround(claimRetriesTmpl, 9), []any{due, due[:1], noIDs}},
	} {
		generic := explainGeneric(t, pool, false, dbschema.Render(c.sql, "outboxd"), slices.Concat(claimArgs, c.more)...)
		if read := onlyIndexes(t, c.what, generic, false); read > 2*(41+3*perKey) {
			t.Errorf("%s read %.0f rows of outbox_messages for 40 keys and %d due messages", c.what, read, 3*perKey)
		}
	}
	// The idle probe (idle.go) of the destination's 32 lanes: at most an
	// index entry per lane and kind, whatever waits behind it (lane 7's
	// 10,000 keyed messages; 3,200 unkeyed ones due in an hour, which
	// make no lane busy).
	probe := dbschema.Render(idleProbeSQL, "outboxd")
	probeArgs := []any{slices.Repeat([]string{"sink"}, numLanes), make([]int16, numLanes)}
	for l := range numLanes {
		probeArgs[1].([]int16)[l] = int16(l)
	}
	rows, _ = pool.Query(ctx, probe, probeArgs...)
	busy, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Lane])
	if err != nil || fmt.Sprint(busy) != fmt.Sprintf("[{sink %d}]", lane) {
		t.Errorf("the idle probe found %v busy (%v); want lane %d only", busy, err, lane)
	}
	for what, p := range map[string]planNode{
		"the idle probe":         explain(t, pool, "ANALYZE, ", probe, probeArgs...),
		"the generic idle probe": explainGeneric(t, pool, false, probe, probeArgs...),
	} {
		if read := onlyIndexes(t, what, p, false); read > numLanes+1 {
			t.Errorf("%s read %.0f rows of outbox_messages for %d lanes, one of them busy", what, read, numLanes)
		}
	}
	idTexts := make([]string, n)
	for i, id := range ids {
		idTexts[i] = id.String()
	}
	// Typed arrays: the simple protocol that explainGeneric sends them in
	// cannot encode []any.
	texts := func(v string) []string { return slices.Repeat([]string{v}, n) }
	genericRecord := explainGeneric(t, pool, false, dbschema.Render(recordSQL, "outboxd"), "sink", lane, "me", int64(1),
		idTexts, texts("delivered"), texts("ok"), make([]int64, n), texts(""), slices.Repeat([]int32{200}, n),
		make([]int64, n), slices.Repeat([]float64{1}, n), texts(""), make([]int32, n))
	if read := onlyIndexes(t, "the generic recording", genericRecord, false); read != float64(n) {
		t.Errorf("the generic recording of %d results read %.0f rows of outbox_messages", n, read)
	}
	for _, s := range scans(genericRecord) {
		if s.Index != "outbox_messages_pkey" {
			t.Errorf("the generic recording reads outbox_messages through %s", s.Index)
		}
	}
	genericUnserved := explainGeneric(t, pool, false, dbschema.Render(unservedSQL, "outboxd"), unservedCap)
	if read := onlyIndexes(t, "the generic unserved-destination sweep", genericUnserved, false); read > 2*unservedCap+10 {
		t.Errorf("the generic unserved-destination sweep read %.0f rows of outbox_messages, want at most %d and a few probes", read, 2*unservedCap)
	}
	checkPurgePlan(t, "the generic delivered purge", explainGeneric(t, pool, true, purge, 1000, int64(0)))
}

// checkPurgePlan fails unless a delivered purge of 1,000 reads
// outbox_messages through index scans only (the delivered index to find
// the batch, the primary key to delete it), sorts nothing and reads no
// more than the batch from each.
func checkPurgePlan(t *testing.T, what string, p planNode) {
	t.Helper()
	if read := onlyIndexes(t, what, p, false); read > 2*1000 {
		t.Errorf("%s of 1,000 read %.0f rows of outbox_messages", what, read)
	}
	if sorts := nodes(p, "Sort"); sorts > 0 {
		t.Errorf("%s sorts (%d Sort nodes)", what, sorts)
	}
	found := false
	for _, s := range scans(p) {
		found = found || s.Index == "outbox_messages_delivered_idx"
	}
	if !found {
		t.Errorf("%s does not walk outbox_messages_delivered_idx", what)
	}
}

// nodes counts the plan's nodes of the given type.
func nodes(p planNode, nodeType string) int {
	c := 0
	p.Walk(func(n planNode) {
		if n.NodeType == nodeType {
			c++
		}
	})
	return c
}

// explainGeneric runs EXPLAIN ANALYZE of sql's generic plan (plan_cache_mode
// = force_generic_plan) in a transaction it rolls back; with indexPlan, the
// transaction is the delivered purge's (beginIndexPlan).
func explainGeneric(t *testing.T, pool *pgxpool.Pool, indexPlan bool, sql string, args ...any) planNode {
	t.Helper()
	ctx := context.Background()
	begin := func() (pgx.Tx, error) { return pool.Begin(ctx) }
	if indexPlan {
		begin = func() (pgx.Tx, error) { return beginIndexPlan(ctx, pool) }
	}
	tx, err := begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// A prepared statement outlives the transaction: a name of its own,
	// deallocated when done.
	name := fmt.Sprintf("generic_%d", genericSeq.Add(1))
	params := make([]string, len(args))
	for i := range args {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	for _, q := range []string{"SET LOCAL plan_cache_mode = force_generic_plan", "PREPARE " + name + " AS " + sql} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The simple protocol sends the arguments as literals of EXECUTE.
	plan := explain(t, tx, "ANALYZE, ", "EXECUTE "+name+"("+strings.Join(params, ", ")+")",
		append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if _, err := tx.Exec(ctx, "DEALLOCATE "+name); err != nil {
		t.Fatal(err)
	}
	return plan
}

var genericSeq atomic.Int64

// A claim only reads: it takes no transaction id, so its commit writes no
// commit record and waits for no WAL flush (with a lock on the lease row
// it did: about 1 ms between a wake-up and the first request, and a flush
// on every idle lane's sweep). Its lease check still refuses another
// token, another owner and an expired lease.
func TestClaimWritesNothing(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	lane, _ := backlogLane(t, pool)
	claim := dbschema.Render(claimSQL, "outboxd")
	ctx := context.Background()
	for _, c := range []struct {
		owner   string
		token   int64
		expired bool
		want    int
	}{{"me", 1, false, 30}, {"me", 2, false, 0}, {"other", 1, false, 0}, {"me", 1, true, 0}} {
		if c.expired { // last: it ends the lease for good
			if _, err := pool.Exec(ctx, `UPDATE outboxd.outbox_lanes SET lease_until = now() - interval '1 second'`); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// As the runner sends it (queryGeneric), here inside a transaction
		// that can tell whether the batch took an id.
		n := 0
		err = queryGeneric(ctx, tx, func(rows pgx.Rows) error {
			for rows.Next() {
				n++
			}
			return rows.Err()
		}, claim, "sink", lane, c.owner, c.token, 10, 200, int64(DefaultBatchBytes))
		if err != nil {
			t.Fatal(err)
		}
		var xid *string
		if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned()::text`).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback(ctx)
		if n != c.want {
			t.Fatalf("%+v: claimed %d messages, want %d", c, n, c.want)
		}
		if xid != nil {
			t.Fatalf("%+v: the claim took transaction id %s: a commit record and a WAL flush", c, *xid)
		}
	}
}
