package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// hangingOne delivers every message at once but the one whose payload is
// "hang", which it holds until release is closed (or its context ends),
// and one whose payload is gone, which it answers 410; it counts the calls
// per message.
type hangingOne struct {
	mu       sync.Mutex
	calls    map[uuid.UUID]int
	inFlight chan struct{}
	release  chan struct{}
	bound    int           // Concurrency(), for the pooled variant
	gone     []byte        // a payload answered 410 (the destination pauses), if set
	slow     chan struct{} // if set, a payload "slow" is delivered once it is closed
}

func (h *hangingOne) Deliver(ctx context.Context, m dispatch.Message) dispatch.Result {
	h.mu.Lock()
	h.calls[m.ID]++
	h.mu.Unlock()
	if h.gone != nil && bytes.Equal(m.Payload, h.gone) {
		return dispatch.Result{Outcome: dispatch.Pause, StatusCode: 410, Err: errors.New("HTTP 410")}
	}
	if h.slow != nil && bytes.Equal(m.Payload, []byte("slow")) {
		select {
		case h.inFlight <- struct{}{}:
		default:
		}
		<-h.slow
	}
	if bytes.Equal(m.Payload, []byte("hang")) {
		select {
		case h.inFlight <- struct{}{}:
		default:
		}
		select {
		case <-h.release:
		case <-ctx.Done():
			return dispatch.Result{Outcome: dispatch.Retry, Err: ctx.Err()}
		}
	}
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// newSlowHangingOne is a hangingOne whose "slow" payload waits for slow.
func newSlowHangingOne() *hangingOne {
	return &hangingOne{calls: map[uuid.UUID]int{}, inFlight: make(chan struct{}, 2), release: make(chan struct{}), slow: make(chan struct{})}
}

func (h *hangingOne) count(id uuid.UUID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

type pooledHangingOne struct{ *hangingOne }

func (p pooledHangingOne) Concurrency() int { return p.bound }

// A request that hangs holds up its own key only: the lane's other keys
// and unkeyed messages, committed while it hangs, are delivered meanwhile
// (they waited for the destination's whole timeout, on every retry: an
// operator's trial), while the next message of its key waits for it, and
// nothing is sent twice. With and without the destination's bound on
// calls in flight (its delivery pool).
func TestAHangingRequestHoldsUpOnlyItsKey(t *testing.T) {
	t.Parallel()
	for _, pooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("pooled=%v", pooled), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			h := &hangingOne{calls: map[uuid.UUID]int{}, inFlight: make(chan struct{}, 1), release: make(chan struct{}), bound: 8}
			var dest dispatch.Destination = h
			if pooled {
				dest = pooledHangingOne{h}
			}
			b.start(t, b.config(t, func(c *worker.Config) { c.Destinations = map[string]dispatch.Destination{"sink": dest} }))
			waitReady(t, b)
			// A key in the hanging key's lane, and the lane.
			var lane int
			var neighbour string
			if err := b.pool.QueryRow(ctx, `
SELECT (hashtext('k-hang') & 2147483647) % 32,
       (SELECT 'k-' || i FROM generate_series(1, 10000) i
        WHERE (hashtext('k-' || i) & 2147483647) % 32 = (hashtext('k-hang') & 2147483647) % 32 LIMIT 1)`).Scan(&lane, &neighbour); err != nil {
				t.Fatal(err)
			}
			enqueue := func(key, payload string) uuid.UUID {
				t.Helper()
				e, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte(payload)})
				if err != nil {
					t.Fatal(err)
				}
				return e.ID
			}
			hang := enqueue("k-hang", "hang")
			select {
			case <-h.inFlight:
			case <-time.After(20 * time.Second):
				t.Fatal("the hanging request was never sent")
			}
			behind := enqueue("k-hang", "behind")
			others := []uuid.UUID{enqueue(neighbour, "neighbour")}
			for range 64 {
				others = append(others, enqueue("", "unkeyed"))
			}
			var sameLane int
			if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages WHERE id = ANY($1) AND lane = $2`, others, lane).Scan(&sameLane); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "the other messages, while one request of the lane hangs", func() bool {
				for _, id := range others {
					if h.count(id) == 0 {
						return false
					}
				}
				return true
			})
			if h.count(behind) != 0 || h.count(hang) != 1 {
				t.Fatalf("while the request hangs: the next message of its key sent %d times, the hanging one %d; want 0 and 1", h.count(behind), h.count(hang))
			}
			close(h.release)
			waitFor(t, 20*time.Second, "the hanging key's next message, once the request returned", func() bool { return h.count(behind) == 1 })
			counts := b.waitSettled(t, 20*time.Second)
			if counts["delivered"] != len(others)+2 {
				t.Fatalf("statuses %v, want %d delivered", counts, len(others)+2)
			}
			for _, id := range append(others, hang, behind) {
				if n := h.count(id); n != 1 {
					t.Fatalf("message %s sent %d times", id, n)
				}
			}
			t.Logf("%d of the %d other messages were in the hanging request's lane %d", sameLane, len(others), lane)
		})
	}
}

// A stop waits for a straggler's request as for any in flight, and cut
// off at its deadline records it as abandoned: the message stays pending,
// tried once, for the lane's next holder.
func TestStopCutsAStragglerOffAsAnyAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	h := &hangingOne{calls: map[uuid.UUID]int{}, inFlight: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(func() { close(h.release) })
	d, err := worker.New(b.pool, b.config(t, func(c *worker.Config) { c.Destinations = map[string]dispatch.Destination{"sink": h} }))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, b)
	hang, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("hang")})
	if err != nil {
		t.Fatal(err)
	}
	<-h.inFlight
	// Another key of its lane is delivered: the lane moved on, the
	// request is a straggler.
	neighbour := laneNeighbour(t, b)
	next, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: neighbour, Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the lane's next key, beside the hanging request", func() bool { return h.count(next.ID) == 1 })
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := d.Stop(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop: %v, want the deadline's error (a request was cut off)", err)
	}
	var status string
	var outcomes []string
	if err := b.pool.QueryRow(ctx, `SELECT status, ARRAY(SELECT outcome FROM outboxd.outbox_attempts WHERE message_id = $1)
FROM outboxd.outbox_messages WHERE id = $1`, hang.ID).Scan(&status, &outcomes); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || fmt.Sprint(outcomes) != "[abandoned]" || h.count(hang.ID) != 1 {
		t.Fatalf("the straggler after the stop: %s, attempts %v, sent %d times; want pending, [abandoned], 1", status, outcomes, h.count(hang.ID))
	}
}

// A straggler that ends while its destination is paused (by the lane's
// next batch: a 410) is recorded all the same: its message was delivered.
// It was held in memory until the destination was resumed (a review's).
func TestAStragglerEndingWhilePausedIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	h := &hangingOne{calls: map[uuid.UUID]int{}, inFlight: make(chan struct{}, 1), release: make(chan struct{}), gone: []byte("gone")}
	b.start(t, b.config(t, func(c *worker.Config) { c.Destinations = map[string]dispatch.Destination{"sink": h} }))
	waitReady(t, b)
	neighbour := laneNeighbour(t, b)
	hang, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("hang")})
	if err != nil {
		t.Fatal(err)
	}
	<-h.inFlight
	gone, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: neighbour, Payload: []byte("gone")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the destination paused by the lane's next key, beside the hanging request", func() bool {
		var paused bool
		err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outboxd.outbox_destinations WHERE name = 'sink' AND paused)`).Scan(&paused)
		return err == nil && paused && h.count(gone.ID) == 1
	})
	close(h.release)
	waitFor(t, 10*time.Second, "the straggler's delivery recorded while the destination is paused", func() bool {
		var status string
		err := b.pool.QueryRow(ctx, `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, hang.ID).Scan(&status)
		return err == nil && status == "delivered"
	})
}

// A slow request in the same batch as one that hangs is recorded when it
// ends, and its key's next message goes out, while the other still hangs:
// a straggler's keys are freed one by one. They waited for the hanging
// request's whole timeout, and a crash meanwhile sent the slow one again
// (a re-trial's).
func TestAStragglersKeysAreFreedOneByOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	h := newSlowHangingOne()
	neighbour := laneNeighbour(t, b)
	// Both in the lane's first batch: enqueued before the dispatcher starts.
	hang, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("hang")})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: neighbour, Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, func(c *worker.Config) { c.Destinations = map[string]dispatch.Destination{"sink": h} }))
	t.Cleanup(func() { close(h.release) }) // before the dispatcher's stop (cleanups run last first)
	waitFor(t, 20*time.Second, "both requests in flight", func() bool { return h.count(hang.ID) == 1 && h.count(slow.ID) == 1 })
	// A third key of the lane goes out beside them: the batch is a straggler.
	third := laneNeighbour(t, b, neighbour)
	other, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: third, Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the lane's third key, beside the two", func() bool { return h.count(other.ID) == 1 })
	close(h.slow)
	next, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: neighbour, Payload: []byte("next")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the slow request recorded and its key's next message sent, the other still hanging", func() bool {
		var status string
		err := b.pool.QueryRow(ctx, `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, slow.ID).Scan(&status)
		return err == nil && status == "delivered" && h.count(next.ID) == 1
	})
	if n := h.count(slow.ID); n != 1 {
		t.Fatalf("the slow request sent %d times", n)
	}
}

// laneNeighbour is an ordering key in k-hang's lane, none of but.
func laneNeighbour(t *testing.T, b bundle, but ...string) string {
	t.Helper()
	var key string
	if err := b.pool.QueryRow(context.Background(), `SELECT 'k-' || i FROM generate_series(1, 10000) i
WHERE (hashtext('k-' || i) & 2147483647) % 32 = (hashtext('k-hang') & 2147483647) % 32 AND 'k-' || i <> ALL($1) LIMIT 1`, append([]string{}, but...)).Scan(&key); err != nil {
		t.Fatal(err)
	}
	return key
}

// A straggler's results that the database refuses are recorded later
// with the ones after them, never dropped: a key's delivered message
// whose recording failed was sent again after its successor once the key
// was freed (a review's: the receiver saw 1, 2, 3, 2). Here a trigger
// refuses the first message's update while the key's second hangs.
func TestAStragglersRefusedResultsAreNotSentAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	h := newSlowHangingOne()
	first, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("hang")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `
CREATE TABLE refusing (id uuid);
CREATE FUNCTION outboxd.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT 1 FROM refusing WHERE id = NEW.id) THEN RAISE EXCEPTION 'recording refused'; END IF; RETURN NEW; END $$;
CREATE TRIGGER test_refuse BEFORE UPDATE ON outboxd.outbox_messages FOR EACH ROW EXECUTE FUNCTION outboxd.test_refuse()`); err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": h}
		c.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	t.Cleanup(func() { close(h.release) })
	// The batch (both messages) becomes a straggler: a neighbour goes out.
	waitFor(t, 20*time.Second, "the first request in flight", func() bool { return h.count(first.ID) == 1 })
	other, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: laneNeighbour(t, b), Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a neighbour beside the slow request", func() bool { return h.count(other.ID) == 1 })
	if _, err := b.pool.Exec(ctx, `INSERT INTO refusing VALUES ($1)`, first.ID); err != nil {
		t.Fatal(err)
	}
	close(h.slow) // the first is delivered, the second hangs
	waitFor(t, 20*time.Second, "the first's result refused, the second in flight", func() bool {
		return strings.Contains(log.String(), "not recorded") && h.count(second.ID) == 1
	})
	h.release <- struct{}{} // the second is delivered
	if _, err := b.pool.Exec(ctx, `DELETE FROM refusing`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both recorded delivered", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages WHERE status = 'delivered' AND id = ANY($1)`, []uuid.UUID{first.ID, second.ID}).Scan(&n)
		return err == nil && n == 2
	})
	if n := h.count(first.ID); n != 1 {
		t.Fatalf("the first message, delivered, sent %d times: its refused result was dropped and it went out again after the second", n)
	}
}
