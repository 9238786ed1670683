package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A lane handed to another dispatcher (balancing) whose batch's results
// the database refuses gives them up as a stop does, and says it was a
// hand-over: "while stopping" in a daemon nobody stopped sent an operator
// looking for who stopped it. Balancing gives back the highest lanes: the
// message is in lane 31.
func TestResultsGivenUpInAHandOverAreNotLoggedAsAStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var key string
	if err := b.pool.QueryRow(ctx, `SELECT 'k-' || i FROM generate_series(1, 10000) i
WHERE (hashtext('k-' || i) & 2147483647) % 32 = 31 LIMIT 1`).Scan(&key); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `
CREATE TABLE refusing ();
CREATE FUNCTION outboxd.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT FROM refusing) THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
CREATE TRIGGER test_refuse BEFORE UPDATE ON outboxd.outbox_messages FOR EACH ROW EXECUTE FUNCTION outboxd.test_refuse()`); err != nil {
		t.Fatal(err)
	}
	h := &hangingOne{calls: map[uuid.UUID]int{}, inFlight: make(chan struct{}, 2), release: make(chan struct{}), slow: make(chan struct{})}
	m, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	log := &syncbuf.Buffer{}
	config := func(id string) *worker.Config {
		return b.config(t, func(c *worker.Config) {
			c.ID = id
			c.Destinations = map[string]dispatch.Destination{"sink": h}
			c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
	}
	one := b.start(t, config("one"))
	t.Cleanup(func() {
		select {
		case <-h.slow:
		default:
			close(h.slow)
		}
	})
	waitFor(t, 20*time.Second, "the message in flight", func() bool { return h.count(m.ID) == 1 })
	if _, err := b.pool.Exec(ctx, `INSERT INTO refusing DEFAULT VALUES`); err != nil {
		t.Fatal(err)
	}
	b.start(t, config("two"))
	lane := worker.Lane{Destination: "sink", Lane: 31}
	waitFor(t, 20*time.Second, "lane 31 handed over", func() bool { return !worker.HasRunner(one, lane) })
	close(h.slow) // delivered; its result refused, and given up at once by a runner handing its lane over
	waitFor(t, 20*time.Second, "the result given up", func() bool {
		l := log.String()
		return strings.Contains(l, "while handing the lane to another dispatcher") || strings.Contains(l, "while stopping")
	})
	if strings.Contains(log.String(), "while stopping") {
		t.Fatalf("a hand-over logged as a stop:\n%s", log.String())
	}
}
