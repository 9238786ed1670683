package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// waitStopping waits until d reports not ready: a stop has begun.
func waitStopping(t *testing.T, d *worker.Dispatcher) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for d.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never began to stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkStopped asserts, once, that d holds no lane, is deregistered, and
// that the cut-off attempt of msg is recorded as abandoned.
func checkStopped(t *testing.T, b bundle, d *worker.Dispatcher, msg uuid.UUID) {
	t.Helper()
	held, registered, attempts := stopState(t, b, d, msg)
	if held != 0 || registered != 0 || len(attempts) != 1 || attempts[0].Outcome != outbox.OutcomeAbandoned {
		t.Fatalf("right after Stop returned: %d lanes held, registered %d, %d attempts (want 0, 0, 1 abandoned)", held, registered, len(attempts))
	}
}

// stopState reads what a stopped d should have left: the lanes it still
// holds, whether it is registered, and msg's attempts.
func stopState(t *testing.T, b bundle, d *worker.Dispatcher, msg uuid.UUID) (held, registered int, attempts []outbox.Attempt) {
	t.Helper()
	bg := context.Background()
	err := b.pool.QueryRow(bg, `SELECT
  (SELECT count(*) FROM outboxd.outbox_lanes WHERE owner = $1 AND lease_until > now()),
  (SELECT count(*) FROM outboxd.outbox_dispatchers WHERE id = $1)`, d.ID()).Scan(&held, &registered)
	if err != nil {
		t.Fatal(err)
	}
	if attempts, err = b.outbox.Attempts(bg, b.pool, msg); err != nil {
		t.Fatal(err)
	}
	return held, registered, attempts
}

// A Stop called while a cancelled Start context is stopping the dispatcher
// returns only once that stop is complete: then the pool may be closed.
func TestStopAfterStartContextCancelWaitsForTheStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, msg := hangingDispatcher(ctx, t, b)
	cancel()
	waitStopping(t, d)
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop after the cancel: %v, want nil", err)
	}
	checkStopped(t, b, d, msg)
}

// A second Stop during a graceful one waits for it, or returns its own
// context's error; cancelling the Start context during the graceful stop
// cuts the in-flight delivery off (River's rule).
func TestConcurrentStopAndStartCancelDuringGracefulStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	startCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, msg := hangingDispatcher(startCtx, t, b)
	first := make(chan error, 1)
	go func() { first <- d.Stop(context.Background()) }()
	waitStopping(t, d)

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := d.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Stop while the first waits on a hung delivery: %v, want its deadline", err)
	}
	select {
	case err := <-first:
		t.Fatalf("the graceful Stop returned %v while the delivery hung", err)
	default:
	}

	cancel() // escalates the graceful stop
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("graceful Stop cut off by the Start context: %v, want context.Canceled", err)
	}
	checkStopped(t, b, d, msg)
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop after the stop: %v", err)
	}
}

// Start with a context already cancelled fails with the context's error.
func TestStartWithCancelledContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start(cancelled): %v, want context.Canceled", err)
	}
	if d.Ready() {
		t.Fatal("ready after a failed Start")
	}
}

// A cancelled Start context with nothing in flight is not reported as
// abandoning deliveries.
func TestStartCancelWithNothingInFlightLogsNoAbandon(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	d, err := worker.New(b.pool, b.config(t, func(c *worker.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !d.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	waitStopping(t, d)
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "abandoned") || !strings.Contains(out, "nothing was in flight") {
		t.Fatalf("logs of a stop with nothing in flight:\n%s", out)
	}
}
