package worker_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

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
		func(d *worker.Dispatcher) { probes = worker.ProbeListener(d, "") })
	select {
	case arrived := <-probes:
		if !arrived {
			t.Fatalf("the probe did not arrive; logs:\n%s", logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no probe was sent or answered within 30 s")
	}
	if strings.Contains(logs.String(), "did not reach this dispatcher's listening connection") {
		t.Fatalf("warned:\n%s", logs.String())
	}
}

// Through PgBouncer's transaction pooling the LISTEN lands on a server
// connection that forwards nothing afterwards: every wake-up was lost and
// nothing said so (an operator's trial). The probe, sent here where the
// listener does not listen, stands for that: after listenProbeWait (10 s,
// docs/operations.md) the dispatcher warns, naming the pooler.
func TestListeningConnectionWarnsWhenItsProbeNeverArrives(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	var probes <-chan bool
	started := time.Now()
	b.startWith(t, b.config(t, func(c *worker.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) }),
		func(d *worker.Dispatcher) { probes = worker.ProbeListener(d, "outboxd_listen_probe_elsewhere") })
	select {
	case arrived := <-probes:
		if arrived {
			t.Fatal("a probe sent where nobody listens arrived")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no warning within 60 s")
	}
	if waited := time.Since(started); waited < 10*time.Second {
		t.Fatalf("warned after %s, before the 10 s bound", waited)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "did not reach this dispatcher's listening connection") {
			line = l
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "transaction mode (PgBouncer)") || !strings.Contains(line, "waited=10s") {
		t.Fatalf("want a warning naming the pooler and the 10 s wait; logs:\n%s", logs.String())
	}
}
