package worker_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"

	"github.com/outboxd/outboxd/internal/syncbuf"
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

// The attempt that uses up a message's retries is recorded as what it came
// to, dead, not as a retry (whose doc says the message is tried again):
// the attempts of a dead letter read retry, retry, dead, and so does
// outboxd_delivery_attempts_total.
func TestTheLastAttemptOfADeadLetterIsDead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.enqueue(t, 1, 1, func(int) string { return "" })
	dest := &failingFirst{n: 100, fail: func() dispatch.Result {
		return dispatch.Result{Outcome: dispatch.Retry, Err: errors.New("HTTP 500"), StatusCode: 500}
	}}
	reg, m := newMetrics(t)
	logs := &syncbuf.Buffer{}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
		c.Retry = worker.RetryPolicy{Base: 10 * time.Millisecond, Max: 10 * time.Millisecond, MaxAttempts: 3}
		c.Metrics = m
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}))
	if c := b.waitSettled(t, 20*time.Second); c["dead"] != 1 {
		t.Fatalf("statuses %v", c)
	}
	attempts := b.attemptsOfTheOnly(t)
	var got []outbox.Outcome
	for _, a := range attempts {
		got = append(got, a.Outcome)
	}
	if want := []outbox.Outcome{outbox.OutcomeRetry, outbox.OutcomeRetry, outbox.OutcomeDead}; !slices.Equal(got, want) ||
		attempts[2].StatusCode == nil || *attempts[2].StatusCode != 500 || attempts[2].Error != "HTTP 500" {
		t.Fatalf("attempts %v (last %+v); want %v, the last with the destination's status and error", got, attempts[len(attempts)-1], want)
	}
	checkAttempts(t, reg, map[string]int{"retry": 2, "dead": 1})
	if out := logs.String(); !strings.Contains(out, "outcome=dead destination_outcome=retry") {
		t.Errorf("the dead-letter line:\n%s", out)
	}
}
