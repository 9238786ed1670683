package inbox_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// The lines between the README markers are README.md's Go blocks, line
// for line (internal/readme checks it); the rest makes them run.

func readmeRecord(ctx context.Context, pool *pgxpool.Pool, eventID string, body, payload []byte) error {
	// README.md go block 1
	in, _ := inbox.New(nil) // schema "outboxd"
	out, _ := outbox.New(nil)

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		res, err := in.Record(ctx, tx, inbox.Event{Source: "stripe", ID: eventID, Payload: body})
		if err != nil || !res.New {
			return err // duplicate: change nothing, answer 200
		}
		// ... business writes with tx ...
		_, err = out.Enqueue(ctx, tx, outbox.Message{
			Destination: "email-api",
			Type:        "email.welcome",
			Payload:     payload,
			CausedBy:    &outbox.EventRef{Source: "stripe", EventID: eventID},
		})
		return err
	})
	// end of README.md go block
	return err
}

// README.md's first block: the event and its message commit together, and
// a second delivery of the event changes nothing.
func Example_readmeRecord() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // a fresh migrated database
	defer done()
	for range 2 {
		err := readmeRecord(ctx, pool, "evt_1", []byte(`{"id":"evt_1"}`), []byte(`{"to":"ada@example.com"}`))
		if err != nil {
			panic(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&n); err != nil {
		panic(err)
	}
	fmt.Println("messages:", n)
	// Output: messages: 1
}

func readmeReceiver(mux *http.ServeMux, pool *pgxpool.Pool, in *inbox.Inbox) error {
	// README.md go block 2
	stripe, err := verify.Stripe(os.Getenv("STRIPE_WEBHOOK_SECRET"))
	if err != nil {
		return err // no secret
	}
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{{Name: "stripe", Verifier: stripe, Handle: func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
			// business writes and out.Enqueue(ctx, tx, ...): they commit with the inbox record
			return nil
		}}},
	})
	if err != nil {
		return err // a required field is missing: the error names it
	}
	mux.Handle("/webhooks/", rc) // 200 new or duplicate, 401 bad signature, 422 permanent, 503 transient
	// end of README.md go block
	return nil
}

// README.md's second block: the receiver answers a signed event 200, its
// duplicate 200, and a request signed with another secret 401.
func Example_readmeReceiver() {
	pool, done := pgtest.ExamplePool()
	defer done()
	if err := os.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_example"); err != nil {
		panic(err)
	}
	in, _ := inbox.New(nil)
	mux := http.NewServeMux()
	if err := readmeReceiver(mux, pool, in); err != nil {
		panic(err)
	}
	body := `{"id":"evt_1","type":"customer.created","created":1767225600}`
	for _, secret := range []string{"whsec_example", "whsec_example", "whsec_other"} {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + body))
		r := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader(body))
		r.Header.Set("Stripe-Signature", "t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(w.Code)
	}
	// Output:
	// 200
	// 200
	// 401
}
