package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/worker"
)

// A result that cannot be recorded while the dispatcher stops (the
// database hangs past the stop's budget) is logged as what happens to it:
// the message stays pending and the lane's next holder sends it again. The
// line said the dispatcher "retries with backoff", which a stopping one
// does not; the stop's last lines count every result not recorded (the
// lines of each lane are rate-limited: a trial's said 7 of 67). The
// recording waits until the stop's deadline (a review's: cut at 5 s, what
// a longer wait would have recorded was sent again), and the stop ends
// within its bound, deadline + StuckGrace, not held by the claims of the
// other lanes, waiting on the same lock. The next dispatcher does deliver
// it.
func TestAResultUnrecordedAtStopIsSaidToBeSentAgain(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	b := setup(t)
	dest := &deaf{released: make(chan struct{})}
	logs := &syncbuf.Buffer{}
	d := b.start(t, b.config(t, func(c *worker.Config) {
		c.Destinations = map[string]dispatch.Destination{"sink": dest}
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	b.enqueue(t, 1, 1, func(int) string { return "k" })
	waitFor(t, 30*time.Second, "the delivery to begin", func() bool { return dest.entered.Load() > 0 })

	tx, err := b.pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(bg) }()
	if _, err := tx.Exec(bg, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const deadline = 8 * time.Second
	ctx, cancel := context.WithTimeout(bg, deadline)
	defer cancel()
	stopped := make(chan error, 1)
	stopAt := time.Now()
	go func() { stopped <- d.Stop(ctx) }()
	close(dest.released)
	waitFor(t, 30*time.Second, "the recording to wait for the lock", func() bool {
		var n int
		err := b.pool.QueryRow(bg, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.relation = 'outboxd.outbox_messages'::regclass AND a.query LIKE '%first_attempt%'`).Scan(&n)
		return err == nil && n > 0
	})
	select {
	case err := <-stopped:
		took := time.Since(stopAt)
		t.Logf("Stop returned after %s: %v", took.Round(time.Millisecond), err)
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
		// The recording until the deadline, and the stop's bound past it.
		if took < deadline-time.Second || took > deadline+worker.StuckGrace {
			t.Errorf("Stop took %s behind a locked table; want the recording to wait for the %s deadline, the stop within StuckGrace past it", took.Round(time.Millisecond), deadline)
		}
	case <-time.After(worker.StuckGrace + 30*time.Second):
		t.Fatal("Stop still waiting for the recording")
	}
	out := logs.String()
	if strings.Contains(out, "retries with backoff") || !strings.Contains(out, "results not recorded while stopping") ||
		!strings.Contains(out, "sent again") || !strings.Contains(out, "not_recorded=1") ||
		!strings.Contains(out, "not recorded since the dispatcher started") || !strings.Contains(out, "not_recorded_in_all=1") {
		t.Fatalf("log:\n%s", out)
	}
	if err := tx.Rollback(bg); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, nil))
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != 1 {
		t.Fatalf("statuses %v", c)
	}
	if n := len(b.sink.Accepted()); n != 1 {
		t.Fatalf("the next dispatcher sent it %d times", n)
	}
}
