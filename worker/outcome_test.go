package worker_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A Destination returning an Outcome that is none of dispatch's is a bug in
// it: the attempt is a retry (the message is not lost), recorded as such,
// and its error says what the destination did wrong.
func TestUnknownOutcomeIsARecordedRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.enqueue(t, 1, 1, func(int) string { return "" })
	// Its first delivery forgets to set the Outcome (the zero value).
	dest := &failingFirst{n: 1, fail: func() dispatch.Result { return dispatch.Result{Err: errors.New("connection refused")} }}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
	}))
	attempts := b.onlyAttempts(t)
	if len(attempts) != 2 {
		t.Fatalf("attempts: %+v", attempts)
	}
	first := attempts[0]
	if first.Outcome != outbox.OutcomeRetry || !strings.Contains(first.Error, `outcome ""`) || !strings.Contains(first.Error, "connection refused") {
		t.Fatalf("first attempt: outcome %q, error %q", first.Outcome, first.Error)
	}
}
