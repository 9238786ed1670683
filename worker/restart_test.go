package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// PostgreSQL restarts while producers enqueue and the dispatcher drains: the
// dispatcher recovers by itself and every committed message is delivered.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	cluster, b := clusterBundle(t)
	s := b.sink
	logs := &syncbuf.Buffer{}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}))

	var (
		stop      atomic.Bool
		committed atomic.Int64
		wg        sync.WaitGroup
	)
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				_, err := b.outbox.Enqueue(context.Background(), b.pool, outbox.Message{
					Destination: "sink", OrderingKey: fmt.Sprintf("p%d", p),
					Payload: fmt.Appendf(nil, `{"i":%d,"key":"p%d"}`, p*1_000_000+i, p),
				})
				if err != nil {
					time.Sleep(50 * time.Millisecond) // the server is down; try again
					continue
				}
				committed.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	waitFor(t, 30*time.Second, "deliveries before the restart", func() bool { return len(s.Requests()) > 50 })
	cluster.Stop()
	time.Sleep(2 * time.Second)
	cluster.Start(t)
	before := committed.Load()
	waitFor(t, 30*time.Second, "commits after the restart", func() bool { return committed.Load() > before+100 })
	stop.Store(true)
	wg.Wait()

	if rows := b.checkAllDelivered(t); int64(rows) < committed.Load() {
		t.Fatalf("%d messages stored, %d commits acknowledged", rows, committed.Load())
	}
	checkOutageLogs(t, logs.String())
}

// checkOutageLogs: an outage is told in a few lines, not one per lane or
// message (before: 154 lines for 8 s, 112 of them per-lane claim failures),
// and River's lines carry our fields.
func checkOutageLogs(t *testing.T, logs string) {
	t.Helper()
	var lines []string
	perMessage := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.Contains(l, "level=WARN") && !strings.Contains(l, "level=ERROR") {
			continue
		}
		lines = append(lines, l)
		_, rest, _ := strings.Cut(l, "msg=")
		msg, _, _ := strings.Cut(rest, " component=")
		perMessage[msg]++
		if !strings.Contains(l, "component=outboxd.worker") || !strings.Contains(l, "dispatcher=") {
			t.Errorf("a line without our fields: %s", l)
		}
	}
	t.Logf("%d warning and error lines for the outage:\n%s", len(lines), strings.Join(lines, "\n"))
	if !strings.Contains(logs, "database operations succeed again") {
		t.Error("no line saying the database is back")
	}
	for msg, n := range perMessage {
		if n > 3 {
			t.Errorf("%d lines of %s during one outage", n, msg)
		}
	}
}
