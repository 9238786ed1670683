package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/inbox/verify"
)

// An HTTP destination posts each message signed the Standard Webhooks way,
// with the message's idempotency key on every attempt, and classifies the
// answer: a 503 is retried later, a 2xx is delivered. Here the receiving
// end checks the signature with package verify.
func ExampleNewHTTP() {
	const secret = "whsec_YW4gZXhhbXBsZSBrZXksIG5ldmVyIGEgcmVhbCBvbmU=" // the receiver's, from its settings
	check, err := verify.StandardWebhooks(secret)
	if err != nil {
		panic(err)
	}
	answers := []int{http.StatusServiceUnavailable, http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		meta, err := check.Verify(r, body, time.Now())
		fmt.Printf("received %s, Idempotency-Key %s, signature ok: %t\n", body, r.Header.Get("Idempotency-Key"), err == nil && meta.ID != "")
		w.WriteHeader(answers[0])
		answers = answers[1:]
	}))
	defer srv.Close()

	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: srv.URL, Secret: secret, Timeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	msg := dispatch.Message{
		ID:             uuid.MustParse("0192f0c1-7d3e-7a10-8b1e-3f4c5d6e7f80"),
		Destination:    "crm",
		Type:           "deal.won",
		Payload:        []byte(`{"deal":42}`),
		IdempotencyKey: "0192f0c1-7d3e-7a10-8b1e-3f4c5d6e7f80",
	}
	for attempt := 1; attempt <= 2; attempt++ {
		msg.Attempt = attempt
		res := dest.Deliver(context.Background(), msg)
		fmt.Printf("attempt %d: %s (HTTP %d)\n", attempt, res.Outcome, res.StatusCode)
	}

	// Output:
	// received {"deal":42}, Idempotency-Key 0192f0c1-7d3e-7a10-8b1e-3f4c5d6e7f80, signature ok: true
	// attempt 1: retry (HTTP 503)
	// received {"deal":42}, Idempotency-Key 0192f0c1-7d3e-7a10-8b1e-3f4c5d6e7f80, signature ok: true
	// attempt 2: delivered (HTTP 200)
}
