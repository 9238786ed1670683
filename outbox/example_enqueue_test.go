package outbox_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// Messages are written in the caller's transaction: a rollback sends
// nothing. Messages that share an ordering key are numbered in commit order.
func ExampleOutbox_Enqueue() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // a fresh migrated database
	defer done()
	out, _ := outbox.New(nil)

	stageChanged := func(stage string, commit bool) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			panic(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
		// ... the business write (UPDATE deals SET stage = ...) goes here ...
		msg, err := out.Enqueue(ctx, tx, outbox.Message{
			Destination: "sales-chat",
			Type:        "deal.stage_changed",
			OrderingKey: "deal-42", // one at a time, in commit order
			Payload:     []byte(`{"deal":42,"stage":"` + stage + `"}`),
		})
		if err != nil {
			panic(err)
		}
		if !commit {
			fmt.Printf("%s: rolled back\n", stage)
			return
		}
		if err := tx.Commit(ctx); err != nil {
			panic(err)
		}
		fmt.Printf("%s: seq %d\n", stage, msg.Seq)
	}
	stageChanged("qualified", true)
	stageChanged("proposal", false)
	stageChanged("negotiation", true)

	rows, _ := pool.Query(ctx, `SELECT convert_from(payload, 'UTF8') FROM outboxd.outbox_messages ORDER BY ordering_key, seq`)
	payloads, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	fmt.Println(payloads)

	// Output:
	// qualified: seq 1
	// proposal: rolled back
	// negotiation: seq 2
	// [{"deal":42,"stage":"qualified"} {"deal":42,"stage":"negotiation"}]
}
