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

// A straggler's results that cannot be recorded once its lane's lease ran
// out are logged as the lease's loss, not as a stop: the process was not
// stopping (an operator's trial read "while stopping" in a running
// daemon's log and looked for who stopped it). Here the database refuses
// the lease's renewals and the straggler's result while the straggler is
// out.
func TestAStragglersResultsLostWithTheLeaseAreNotLoggedAsAStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	h := &hangingOne{calls: map[uuid.UUID]int{}, inFlight: make(chan struct{}, 2), release: make(chan struct{}), slow: make(chan struct{})}
	first, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("hang")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `
CREATE TABLE refusing (id uuid);
CREATE FUNCTION outboxd.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT 1 FROM refusing WHERE id = NEW.id OR id IS NULL) THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
CREATE FUNCTION outboxd.test_refuse_lanes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT 1 FROM refusing WHERE id IS NULL) THEN RAISE EXCEPTION 'renewal refused'; END IF; RETURN NEW; END $$;
CREATE TRIGGER test_refuse BEFORE UPDATE ON outboxd.outbox_messages FOR EACH ROW EXECUTE FUNCTION outboxd.test_refuse();
CREATE TRIGGER test_refuse_lanes BEFORE UPDATE ON outboxd.outbox_lanes FOR EACH ROW EXECUTE FUNCTION outboxd.test_refuse_lanes()`); err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": h}
		c.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	t.Cleanup(func() { close(h.release) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(log.String())
		}
	})
	// The batch (both messages) becomes a straggler: a neighbour goes out.
	waitFor(t, 20*time.Second, "the first request in flight", func() bool { return h.count(first.ID) == 1 })
	other, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: laneNeighbour(t, b), Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a neighbour beside the slow request, recorded", func() bool {
		var status string
		err := b.pool.QueryRow(ctx, `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, other.ID).Scan(&status)
		return err == nil && status == "delivered"
	})
	// From here every update is refused: the renewals (the runner's lease
	// runs out within LeaseTTL) and the first's result, delivered now. The
	// database holds the leases for an hour: a renewal after the runner's
	// deadline still fails (it would find the lease gone and stop the
	// runner itself), and recording, which checks the lease, reaches the
	// refusal.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_lanes SET lease_until = now() + interval '1 hour';
INSERT INTO refusing VALUES (NULL)`); err != nil {
		t.Fatal(err)
	}
	close(h.slow)
	waitFor(t, 20*time.Second, "the straggler's result given up", func() bool {
		s := log.String()
		return strings.Contains(s, "results not recorded before the lane's lease ran out") || strings.Contains(s, "while stopping")
	})
	if strings.Contains(log.String(), "while stopping") {
		t.Fatalf("a lease that ran out in a running dispatcher logged as a stop:\n%s", log.String())
	}
}
