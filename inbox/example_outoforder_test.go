package inbox_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// Events can arrive out of order: "apply only if newer" is a compare-and-swap
// on the event's own time (Delivery.OccurredAt, stored as occurred_at). The
// UPDATE's WHERE clause refuses an event older than what the row already
// reflects, and RowsAffected says whether it applied, so a late event
// changes nothing and triggers no side effect.
func ExampleInbox_Record_outOfOrder() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // a fresh migrated database
	defer done()
	_, _ = pool.Exec(ctx, `CREATE TABLE deals (id text PRIMARY KEY, stage text NOT NULL, stage_at timestamptz)`)
	_, _ = pool.Exec(ctx, `INSERT INTO deals VALUES ('deal-42', 'new', NULL)`)
	in, _ := inbox.New(nil)

	apply := func(eventID, stage string, occurred time.Time) {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			res, err := in.Record(ctx, tx, inbox.Event{Source: "crm", ID: eventID, OccurredAt: occurred})
			if err != nil || !res.New {
				return err
			}
			tag, err := tx.Exec(ctx, `
UPDATE deals SET stage = $2, stage_at = $3
WHERE id = $1 AND (stage_at IS NULL OR stage_at < $3)`, "deal-42", stage, occurred)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				fmt.Printf("%s (%s): older than the deal's state, ignored\n", eventID, stage)
				return nil
			}
			fmt.Printf("%s: deal moved to %s\n", eventID, stage)
			return nil
		})
		if err != nil {
			panic(err)
		}
	}
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	for range 2 { // at-least-once: each event arrives twice; the repeats are duplicates
		apply("evt_2", "negotiation", t0.Add(time.Hour)) // the newer event arrives first
	}
	for range 2 {
		apply("evt_1", "qualified", t0) // the older one arrives late
	}
	var stage string
	_ = pool.QueryRow(ctx, `SELECT stage FROM deals`).Scan(&stage)
	fmt.Println("final stage:", stage)

	// Output:
	// evt_2: deal moved to negotiation
	// evt_1 (qualified): older than the deal's state, ignored
	// final stage: negotiation
}
