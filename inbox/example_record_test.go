package inbox_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// A webhook handler records the event, does its business write and enqueues
// the downstream call, all in one transaction. The second delivery of the
// same event is a duplicate and changes nothing.
func ExampleInbox_Record() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // a fresh migrated database
	defer done()
	if _, err := pool.Exec(ctx, `CREATE TABLE contacts (email text PRIMARY KEY)`); err != nil {
		panic(err)
	}

	in, _ := inbox.New(nil)   // schema "outboxd", 96 h dedupe window
	out, _ := outbox.New(nil) // same schema

	handle := func(eventID string, body []byte) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			res, err := in.Record(ctx, tx, inbox.Event{
				Source:  "forms",
				ID:      eventID,
				Payload: body,
				Refs:    map[string]string{"email": "ada@example.com"},
			})
			if err != nil {
				return err
			}
			if !res.New {
				fmt.Printf("%s: duplicate #%d, nothing to do\n", eventID, res.Duplicates)
				return nil
			}
			if _, err := tx.Exec(ctx, `INSERT INTO contacts VALUES ('ada@example.com')`); err != nil {
				return err
			}
			msg, err := out.Enqueue(ctx, tx, outbox.Message{
				Destination: "email-api",
				Type:        "email.welcome",
				Payload:     []byte(`{"to":"ada@example.com"}`),
				CausedBy:    &outbox.EventRef{Source: "forms", EventID: eventID},
			})
			if err != nil {
				return err
			}
			fmt.Printf("%s: new, welcome email queued with Idempotency-Key %s\n", eventID, msg.IdempotencyKey)
			return nil
		})
	}

	body := []byte(`{"email":"ada@example.com"}`)
	for range 2 { // at-least-once: the sender delivers twice
		if err := handle("evt_123", body); err != nil {
			panic(err)
		}
	}
	var contacts, messages int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM contacts`).Scan(&contacts)
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&messages)
	fmt.Printf("contacts: %d, messages: %d\n", contacts, messages)

	// Output:
	// evt_123: new, welcome email queued with Idempotency-Key 4d53243b-e842-5268-985f-28e117b038f5
	// evt_123: duplicate #1, nothing to do
	// contacts: 1, messages: 1
}
