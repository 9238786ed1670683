package worker_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// Failures are logged with what an operator needs (message id, destination,
// attempt, status, error), at most one line per destination and outcome per
// 10 s (docs/operations.md), so a failing busy destination does not write
// a line per message.
func TestFailureLogsAreRateLimited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) { return http.StatusServiceUnavailable, nil }
	b.enqueue(t, 200, 200, func(int) string { return "" })
	logs := &syncbuf.Buffer{}
	started := time.Now()
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Retry.MaxAttempts = 2
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}))
	if c := b.waitSettled(t, 30*time.Second); c["dead"] != 200 {
		t.Fatalf("statuses %v", c)
	}
	windows := 1 + int(time.Since(started)/(10*time.Second))
	var retries, deads []string
	for _, l := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(l, `msg="delivery failed; will retry"`):
			retries = append(retries, l)
		case strings.Contains(l, `msg="message dead-lettered`):
			deads = append(deads, l)
		}
	}
	if len(retries) == 0 || len(retries) > windows || len(deads) == 0 || len(deads) > windows {
		t.Fatalf("%d retry and %d dead-letter lines for 200 messages in %d 10 s windows:\n%s", len(retries), len(deads), windows, logs.String())
	}
	for _, l := range append(retries, deads...) {
		for _, field := range []string{"message_id=", "destination=sink", "attempt=", "status_code=503", `error="HTTP 503`} {
			if !strings.Contains(l, field) {
				t.Fatalf("line without %s: %s", field, l)
			}
		}
	}
	if !strings.Contains(deads[0], "level=ERROR") || !strings.Contains(retries[0], "level=WARN") {
		t.Fatalf("levels: %s / %s", retries[0], deads[0])
	}
}
