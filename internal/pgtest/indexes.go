package pgtest

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgid"
)

// MessageIndexes names, space-separated and sorted, the indexes of
// outboxd.outbox_messages that hold an entry for the current version of
// the message id: every index without a predicate, and those whose
// predicate the row meets. An insert, or an update that is not HOT (none
// of outbox_messages' updates are), writes one entry to each.
func MessageIndexes(t testing.TB, pool *pgxpool.Pool, id uuid.UUID) string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `
SELECT c.relname, coalesce(pg_get_expr(i.indpred, i.indrelid), 'true')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'outboxd.outbox_messages'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	preds := map[string]string{}
	for rows.Next() {
		var name, pred string
		if err := rows.Scan(&name, &pred); err != nil {
			t.Fatal(err)
		}
		preds[name] = pred
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	var out []string
	for name, pred := range preds {
		var meets bool
		// The predicate is PostgreSQL's own text of the catalog's index
		// definition, not input.
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outboxd.outbox_messages WHERE id = $1 AND (`+pred+`))`, pgid.One(id)).Scan(&meets); err != nil {
			t.Fatal(err)
		}
		if meets {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
