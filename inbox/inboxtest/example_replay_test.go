package inboxtest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/inboxtest"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// A test of a webhook handler checks that a duplicate delivery changes
// nothing (DeliverTwice) and that the handler itself may run twice for one
// event (Replay): its effects live in its transaction and its writes are
// keyed on the business, so the second run finds them done. In a test,
// pass the test's t; an example has none, so exampleT stands in.
func ExampleReplay() {
	t := exampleT{}
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // in a test: pgtest.Pool(t), or your own database
	defer done()
	if _, err := pool.Exec(ctx, `CREATE TABLE contacts (email text PRIMARY KEY)`); err != nil {
		panic(err)
	}
	in, _ := inbox.New(nil)
	out, _ := outbox.New(nil)

	// The handler under test: a contact, and a welcome email through the
	// outbox, both in the receipt's transaction.
	welcome := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if _, err := tx.Exec(ctx, `INSERT INTO contacts VALUES ($1) ON CONFLICT DO NOTHING`, "ada@example.com"); err != nil {
			return err
		}
		_, err := out.Enqueue(ctx, tx, outbox.Message{
			Destination: "email-api", Type: "email.welcome", Payload: []byte(`{"to":"ada@example.com"}`),
			CausedBy: &outbox.EventRef{Source: d.Source, EventID: d.ID}, // the same key on every run
		})
		return err
	}
	const secret = "whsec_YW4gZXhhbXBsZSBrZXksIG5ldmVyIGEgcmVhbCBvbmU=" // a test secret
	v, _ := verify.StandardWebhooks(secret)
	receiver, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{{Name: "forms", Verifier: v, Handle: welcome}},
	})
	if err != nil {
		panic(err)
	}

	signer, _ := dispatch.NewSigner(secret)
	signedEvent := func() *http.Request { // a fresh request per delivery
		body := `{"email":"ada@example.com"}`
		r, _ := http.NewRequest(http.MethodPost, "/webhooks/forms", strings.NewReader(body))
		now := time.Now()
		r.Header.Set("Webhook-Id", "evt_1")
		r.Header.Set("Webhook-Timestamp", fmt.Sprint(now.Unix()))
		r.Header.Set("Webhook-Signature", signer.Sign("evt_1", now, []byte(body)))
		return r
	}
	state := func(t testing.TB) any {
		var contacts, messages int
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM outboxd.outbox_messages)`).Scan(&contacts, &messages)
		if err != nil {
			t.Fatalf("state: %v", err)
		}
		return fmt.Sprintf("%d contact, %d message", contacts, messages)
	}

	fmt.Println("delivered twice:", inboxtest.DeliverTwice(t, receiver, signedEvent, state))
	forget := inboxtest.Forget(pool, in, "forms", "evt_1")
	fmt.Println("handler run twice:", inboxtest.Replay(t, receiver, signedEvent, forget, state))

	// Output:
	// delivered twice: 1 contact, 1 message
	// handler run twice: 1 contact, 1 message
}

// exampleT is the part of testing.TB that the helpers use, for examples,
// which have no *testing.T: a failure panics with its message.
type exampleT struct{ testing.TB }

func (exampleT) Helper() {}

func (exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
