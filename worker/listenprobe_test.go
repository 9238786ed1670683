package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/worker"
)

// A listening connection probes itself with a NOTIFY sent from the pool,
// as producers' commits are announced, and a working one gets it: no
// warning.
func TestListeningConnectionGetsItsProbe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	var probes <-chan bool
	b.startWith(t, b.config(t, func(c *worker.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) }),
		func(d *worker.Dispatcher) { probes = worker.ProbeListener(d, "", 50*time.Millisecond) })
	for i := range 3 { // the first probe, and those made every 50 ms after it
		select {
		case arrived := <-probes:
			if !arrived {
				t.Fatalf("probe %d did not arrive; logs:\n%s", i+1, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("probe %d was not sent or answered within 30 s", i+1)
		}
	}
}

// A pool whose connections have a notification handler of the
// application's (pgconn's OnNotification) gave the listening connection,
// made from the pool's settings, that handler too: WaitForNotification
// then returned no notification, and the process crashed at its first
// wake-up (a review's). The listener keeps its own, and commits wake it:
// with sweeps 60 s apart, a commit is delivered at once.
func TestAPoolsNotificationHandlerLeavesTheListenersAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pcfg, err := pgxpool.ParseConfig(b.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	pcfg.ConnConfig.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) { handled.Add(1) }
	if b.pool, err = pgxpool.NewWithConfig(context.Background(), pcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.pool.Close)
	var probes <-chan bool
	b.startWith(t, b.config(t, func(c *worker.Config) { c.SweepInterval = time.Minute }),
		func(d *worker.Dispatcher) { probes = worker.ProbeListener(d, "", 0) })
	select {
	case arrived := <-probes:
		if !arrived {
			t.Fatal("the probe did not arrive")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no probe was sent or answered within 30 s")
	}
	b.enqueue(t, 1, 1, func(int) string { return "" })
	waitFor(t, 20*time.Second, "the commit delivered (sweeps are a minute apart)", func() bool { return b.counts(t)["delivered"] == 1 })
}

// Through PgBouncer's transaction pooling the LISTEN lands on a server
// connection that forwards nothing afterwards: every wake-up was lost and
// nothing said so (an operator's trial). The probe, sent here where the
// listener does not listen, stands for that: after listenProbeWait (10 s,
// docs/operations.md) the dispatcher warns, naming the pooler and the
// sweep that delivers meanwhile, and again at each probe after it.
func TestListeningConnectionWarnsWhenItsProbeNeverArrives(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	var probes <-chan bool
	started := time.Now()
	b.startWith(t, b.config(t, func(c *worker.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) }),
		func(d *worker.Dispatcher) {
			probes = worker.ProbeListener(d, "outboxd_listen_probe_elsewhere", 50*time.Millisecond)
		})
	for i := range 2 {
		select {
		case arrived := <-probes:
			if arrived {
				t.Fatal("a probe sent where nobody listens arrived")
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("no warning %d within 60 s", i+1)
		}
		if waited := time.Since(started); waited < time.Duration(i+1)*10*time.Second {
			t.Fatalf("warning %d came after %s, before %d times the 10 s bound", i+1, waited, i+1)
		}
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "did not reach this dispatcher's listening connection") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d warnings, want 2; logs:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"level=WARN", "transaction mode (PgBouncer)", "waited=10s", "sweep_interval=100ms", "probed_again_in=50ms"} {
		if !strings.Contains(lines[0], want) {
			t.Fatalf("want %s in the warning: %s", want, lines[0])
		}
	}
}

// A probe that cannot be sent (here: a channel name the server refuses;
// in life, a pool busy at start or the database away) is sent again
// every second: behind a transaction pooler the listening connection
// never reconnects, so its first probe may be its only one.
func TestAProbeThatCannotBeSentIsSentAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	b.startWith(t, b.config(t, func(c *worker.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}), func(d *worker.Dispatcher) { worker.ProbeListener(d, strings.Repeat("p", 70), 0) })
	waitFor(t, 30*time.Second, "three tries to send the probe", func() bool {
		return strings.Count(logs.String(), "probe could not be sent; sent again in 1 s") >= 3
	})
	if !strings.Contains(logs.String(), "channel name too long") {
		t.Fatalf("the tries' lines do not say why:\n%s", logs.String())
	}
}
