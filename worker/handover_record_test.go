package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A lane handed to another dispatcher (balancing) whose batch's results
// the database refuses for a while tries them again as long as its lease
// holds, as a running lane does: it gave them up at once, and the lane's
// next holder sent the batch again (a review's). Balancing gives back the
// highest lanes: the message is in lane 31. The same for a straggler's
// result (the batch outlasted stragglerAfter before the hand-over).
func TestAHandOverTriesRefusedResultsAgain(t *testing.T) {
	t.Parallel()
	for _, straggler := range []bool{false, true} {
		t.Run(map[bool]string{false: "batch", true: "straggler"}[straggler], func(t *testing.T) {
			t.Parallel()
			handOverRefused(t, straggler)
		})
	}
}

func handOverRefused(t *testing.T, straggler bool) {
	b := setup(t)
	ctx := context.Background()
	var key, neighbour string
	if err := b.pool.QueryRow(ctx, `SELECT min(k), max(k) FROM (SELECT 'k-' || i AS k FROM generate_series(1, 10000) i
WHERE (hashtext('k-' || i) & 2147483647) % 32 = 31 LIMIT 2) keys`).Scan(&key, &neighbour); err != nil {
		t.Fatal(err)
	}
	refuseUpdates(t, b, "outbox_messages")
	h := newSlowHangingOne()
	log := &syncbuf.Buffer{}
	config := func(id string) *worker.Config {
		return b.config(t, func(c *worker.Config) {
			c.ID = id
			c.Destinations = map[string]dispatch.Destination{"sink": h}
			c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
	}
	// The second dispatcher starts while the first's balancing is held, so
	// that the hand-over comes at once when it is let go: within
	// stragglerAfter of the delivery's start, the batch is still a batch.
	var hold, release func()
	one := b.startWith(t, config("one"), func(d *worker.Dispatcher) { hold, release, _ = worker.GateBalancing(d) })
	waitFor(t, 20*time.Second, "every lane held by the first", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_lanes WHERE owner = 'one' AND destination = 'sink'`).Scan(&n)
		return err == nil && n == 32
	})
	hold()
	t.Cleanup(release)
	b.start(t, config("two"))
	m, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, h.slow)
	waitFor(t, 20*time.Second, "the message in flight", func() bool { return h.count(m.ID) == 1 })
	if straggler {
		deliverBeside(t, b, neighbour)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO refusing DEFAULT VALUES`); err != nil {
		t.Fatal(err)
	}
	release()
	lane := worker.Lane{Destination: "sink", Lane: 31}
	waitFor(t, 20*time.Second, "lane 31 handed over", func() bool { return !worker.HasRunner(one, lane) })
	close(h.slow) // delivered; its result refused while the lane is handed over
	waitFor(t, 20*time.Second, "the result refused, to be tried again", func() bool {
		if straggler {
			return strings.Contains(log.String(), "outlasted their batch not recorded")
		}
		return strings.Contains(log.String(), "tried again after a backoff")
	})
	if _, err := b.pool.Exec(ctx, `DELETE FROM refusing`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the message recorded delivered", func() bool {
		var status string
		err := b.pool.QueryRow(ctx, `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, m.ID).Scan(&status)
		return err == nil && status == "delivered"
	})
	if n := h.count(m.ID); n != 1 {
		t.Fatalf("the message was sent %d times; logs:\n%s", n, log.String())
	}
	for _, gaveUp := range []string{"while stopping", "before the lane's lease ran out"} {
		if strings.Contains(log.String(), gaveUp) {
			t.Fatalf("the hand-over gave its result up (%q):\n%s", gaveUp, log.String())
		}
	}
}
