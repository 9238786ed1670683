package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgid"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// The claims around stragglers leave out their keys and unkeyed ids, and
// still read the backlog through indexes only, as the claims without.
func TestClaimsAroundStragglers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	lane, due := backlogLane(t, pool)
	var sent, other pgtype.UUID
	if err := pool.QueryRow(ctx, `
WITH u AS (SELECT id FROM outboxd.outbox_messages WHERE ordering_key IS NULL AND lane = $1 ORDER BY id LIMIT 2),
     d AS (UPDATE outboxd.outbox_messages m SET next_attempt_at = now() FROM u WHERE m.id = u.id RETURNING m.id)
SELECT (SELECT id FROM u ORDER BY id LIMIT 1), (SELECT id FROM u ORDER BY id DESC LIMIT 1)`, lane).Scan(&sent, &other); err != nil {
		t.Fatal(err)
	}
	const perKey, batch = 10, 200
	args := []any{"sink", lane, "me", int64(1), perKey, batch, int64(DefaultBatchBytes)}
	for _, tc := range []struct {
		name     string
		sql      string
		progress bool
	}{{"walk", claimAround(claimTmpl, 8), false}, {"retries", claimAround(claimRetriesTmpl, 9), true}} {
		q := dbschema.Render(tc.sql, "outboxd")
		a := slices.Clone(args)
		if tc.progress {
			a = append(a, due)
		}
		a = append(a, []string{due[1]}, []pgtype.UUID{sent})
		if read := onlyIndexes(t, "the claim around stragglers ("+tc.name+")", explain(t, pool, "ANALYZE, ", q, a...), false); read > 2*(41+3*perKey) {
			t.Errorf("%s: read %.0f rows of outbox_messages", tc.name, read)
		}
		got := strings.Join(claimedKeys(t, pool, q, a...), " ")
		for s := 1; s <= perKey; s++ {
			for _, k := range []string{due[0], due[2]} {
				if !strings.Contains(got, fmt.Sprintf("%s/%d", k, s)) {
					t.Errorf("%s: %s/%d not claimed: %s", tc.name, k, s, got)
				}
			}
			if strings.Contains(got, fmt.Sprintf("%s/%d ", due[1], s)) {
				t.Errorf("%s: the straggler's key %s claimed: %s", tc.name, due[1], got)
			}
		}
		var ids []pgtype.UUID
		rows, err := pool.Query(ctx, q, a...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if vals[3] == nil {
				ids = append(ids, pgid.One(vals[0].([16]byte)))
			}
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if len(ids) != 1 || ids[0] != other {
			t.Errorf("%s: unkeyed claimed %v, want only %v (not the straggler's %v)", tc.name, ids, other, sent)
		}
	}
	if strings.Contains(claimSQL+claimRetriesSQL, "{{not") || !strings.Contains(claimAround(claimRetriesTmpl, 9), "m.id <> ALL($10::uuid[])") {
		t.Error("the claims without stragglers kept a placeholder")
	}
}
