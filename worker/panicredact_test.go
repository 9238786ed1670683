package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/worker"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// A panic's value is the user's free text: the attempt row (which the
// console shows), the message row and the log keep what it says but no
// password or token in it.
func TestPanicValueIsStoredAndLoggedWithoutSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.enqueue(t, 1, 1, func(int) string { return "" })
	logs := &syncbuf.Buffer{}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": &failingFirst{n: 1, fail: func() dispatch.Result {
			panic("calling https://svc:Pa55wordX@api.example/hook with Authorization: Bearer T0kenS3cretY")
		}}}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}))
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 1 {
		t.Fatalf("statuses %v", c)
	}
	var stored string
	if err := b.pool.QueryRow(context.Background(), `SELECT
  (SELECT string_agg(row_to_json(a)::text, E'\n') FROM outboxd.outbox_attempt_log a) || E'\n' ||
  (SELECT string_agg(row_to_json(m)::text, E'\n') FROM outboxd.outbox_messages m)`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stored, "destination panicked: calling https://svc:xxxxx@api.example/hook") {
		t.Fatalf("the attempt does not say what panicked:\n%s", stored)
	}
	for where, text := range map[string]string{"the database": stored, "the log": logs.String()} {
		for _, secret := range []string{"Pa55wordX", "T0kenS3cretY"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s:\n%s", where, secret, text)
			}
		}
	}
}
