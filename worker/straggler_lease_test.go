package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A straggler's results that cannot be recorded once its lane's lease ran
// out are logged as the lease's loss, not as a stop: the process was not
// stopping (an operator's trial read "while stopping" in a running
// daemon's log and looked for who stopped it). Here the database refuses
// the lease's renewals and the straggler's result while it is out.
func TestAStragglersResultsLostWithTheLeaseAreNotLoggedAsAStop(t *testing.T) {
	t.Parallel()
	s := startStragglerWithoutRenewals(t)
	close(s.h.slow) // delivered; its result refused until the lease runs out
	s.waitGivenUp(t)
}

// The same when the dispatcher is told to stop after the lease ran out,
// and the stop's budget runs out before the straggler ends (a Destination
// that ignores its context): the loss came first, and is what the log
// says.
func TestAStragglersResultsLostWithTheLeaseBeforeAStopAreNotLoggedAsAStop(t *testing.T) {
	t.Parallel()
	s := startStragglerWithoutRenewals(t)
	waitFor(t, 20*time.Second, "the lease run out", func() bool { return strings.Contains(s.log.String(), "lease of a lane ran out") })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.d.Stop(ctx); !errors.Is(err, worker.ErrAbandoned) {
		t.Fatalf("Stop beside a delivery that ignores its context: %v", err)
	}
	close(s.h.slow) // the straggler ends after the stop gave up on it
	s.waitGivenUp(t)
}

// The same when the renewal finds the lease gone (another holder, a
// lease_until past), which also stops the runner.
func TestAStragglersResultsLostWithALeaseFoundGoneAreNotLoggedAsAStop(t *testing.T) {
	t.Parallel()
	s := startStragglerWithoutRenewals(t)
	var lane int
	if err := s.pool.QueryRow(context.Background(), `SELECT (hashtext('k-hang') & 2147483647) % 32`).Scan(&lane); err != nil {
		t.Fatal(err)
	}
	if worker.ExpireRunner(s.d, worker.Lane{Destination: "sink", Lane: lane}) == nil {
		t.Fatalf("lane %d has no runner", lane)
	}
	close(s.h.slow)
	s.waitGivenUp(t)
}

type stragglerWithoutRenewals struct {
	d    *worker.Dispatcher
	pool *pgxpool.Pool
	h    *hangingOne
	log  *syncbuf.Buffer
}

// startStragglerWithoutRenewals starts a dispatcher whose lane holds a
// straggler (a "slow" message, which ignores its context, out past its
// batch) and then refuses every update: the renewals (the runner's lease
// runs out within LeaseTTL) and any result. The database holds the leases
// for an hour: a renewal after the runner's deadline still fails (it would
// otherwise find the lease gone and stop the runner itself), and
// recording, which checks the lease, reaches the refusal.
func startStragglerWithoutRenewals(t *testing.T) stragglerWithoutRenewals {
	t.Helper()
	b := setup(t)
	ctx := context.Background()
	h := newSlowHangingOne()
	first, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: "k-hang", Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	refuseUpdates(t, b, "outbox_messages", "outbox_lanes")
	log := &syncbuf.Buffer{}
	d := b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": h}
		c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	closeOnCleanup(t, h.slow)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(log.String())
		}
	})
	// The batch becomes a straggler: a neighbour goes out, and is recorded.
	waitFor(t, 20*time.Second, "the slow request in flight", func() bool { return h.count(first.ID) == 1 })
	deliverBeside(t, b, laneNeighbour(t, b))
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_lanes SET lease_until = now() + interval '1 hour';
INSERT INTO refusing DEFAULT VALUES`); err != nil {
		t.Fatal(err)
	}
	return stragglerWithoutRenewals{d: d, pool: b.pool, h: h, log: log}
}

// waitGivenUp waits for the straggler's result to be given up, and fails
// if that was said to be a stop's doing.
func (s stragglerWithoutRenewals) waitGivenUp(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "the straggler's result given up", func() bool {
		l := s.log.String()
		return strings.Contains(l, "results not recorded before the lane's lease ran out") || strings.Contains(l, "while stopping")
	})
	if strings.Contains(s.log.String(), "while stopping") {
		t.Fatalf("a lease that ran out logged as a stop:\n%s", s.log.String())
	}
}
