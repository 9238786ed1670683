package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The Go baseline sends the pgbench script's three statements, and they
// write what a receipt through outboxd writes: one inbox row, one business
// row and one keyed message each, with the same shape.
func TestSameSQLWritesWhatAReceiptWrites(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pool := pgtest.Connect(t, url)
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_leads (id bigserial PRIMARY KEY, email text NOT NULL, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	same, err := loadSameSQL("receipt.pgbench")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := same.measure(ctx, url, 2, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	shape := func() [4]int {
		t.Helper()
		var c [4]int
		err := pool.QueryRow(ctx, `SELECT
    (SELECT count(*) FROM outboxd.inbox_events WHERE status = 'processed' AND refs ? 'email'),
    (SELECT count(*) FROM bench_leads),
    (SELECT count(*) FROM outboxd.outbox_messages m WHERE seq >= 1 AND caused_by_event_id IS NOT NULL
        AND EXISTS (SELECT 1 FROM outboxd.inbox_events e WHERE e.source = m.caused_by_source AND e.event_id = m.caused_by_event_id)),
    (SELECT count(*) FROM outboxd.outbox_messages)`).Scan(&c[0], &c[1], &c[2], &c[3])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := shape()
	if c[0] == 0 || c != [4]int{c[0], c[0], c[0], c[0]} {
		t.Fatalf("pgx baseline: processed inbox rows, leads, caused keyed messages, messages = %v; want all equal and non-zero", c)
	}

	in, _ := inbox.New(nil)
	ob, _ := outbox.New(nil)
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return receiptTx(ctx, tx, in, ob) }); err != nil {
		t.Fatal(err)
	}
	if got := shape(); got != [4]int{c[0] + 1, c[0] + 1, c[0] + 1, c[0] + 1} {
		t.Fatalf("after one receipt through outboxd: %v; want each count one more than %v", got, c)
	}
}
