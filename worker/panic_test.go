package worker_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// A Destination that panics is a bug in it, not a reason to kill the
// process: the attempt is a recorded retry saying so, counted like any
// failed attempt, the stack is logged once per window, and the dispatcher
// goes on delivering.
func TestPanickingDestinationIsARecordedRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.enqueue(t, 1, 1, func(int) string { return "" })
	dest := &failingFirst{n: 2, fail: func() dispatch.Result { panic("boom\x00 at the destination") }}
	logs := &syncbuf.Buffer{}
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.Metrics = m
	}))
	attempts := b.onlyAttempts(t)
	if len(attempts) != 3 {
		t.Fatalf("attempts: %+v", attempts)
	}
	for _, a := range attempts[:2] {
		if a.Outcome != outbox.OutcomeRetry || a.Error != "destination panicked: boom at the destination" {
			t.Fatalf("attempt after a panic: outcome %q, error %q", a.Outcome, a.Error)
		}
	}
	checkAttempts(t, reg, map[string]int{"delivered": 1, "retry": 2})
	var panics []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "destination panicked") && strings.Contains(l, "level=ERROR") {
			panics = append(panics, l)
		}
	}
	if len(panics) != 1 || !strings.Contains(panics[0], "stack=") || !strings.Contains(panics[0], "panic_test.go") {
		t.Fatalf("want one ERROR line with the stack for two panics within 10 s, got:\n%s", logs.String())
	}
}
