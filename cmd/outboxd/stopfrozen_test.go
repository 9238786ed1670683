package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// stopAllowance is what a stop may take beyond shutdown_timeout +
// StuckGrace: closePools waits at least a second, and 2 s for a busy
// machine.
const stopAllowance = 3 * time.Second

// A stop while the database hangs (a partition, a stuck server) ends
// within shutdown_timeout + worker.StuckGrace, the wind-down's whole budget
// (docs/configuration.md), where recording, releasing, deregistering and
// River took 5 s each in turn (a trial's serve with shutdown_timeout 2s
// took 17.5 s); and no line says the database answers again while it does
// not (renewing no lease was logged as a recovery).
func TestServeStopsWhileTheDatabaseHangs(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	f := newFreezer(t, hostOf(t, b.url))
	config := serveConfig(t, f.via(t, b.url), b.sink.URL())
	const shutdown = 2 * time.Second
	// The default lease: renewing it while stopping was bounded by the
	// lease alone (lease_ttl - acquire_interval past the stop's budget).
	body := strings.NewReplacer("shutdown_timeout: 10s", "shutdown_timeout: 2s", "lease_ttl: 1s", "lease_ttl: 10s",
		"acquire_interval: 200ms", "acquire_interval: 1s").Replace(readFile(t, config))
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, config)
	d.waitReady(t)
	f.freeze()
	before := len(d.stderr.String())
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	bound := shutdown + worker.StuckGrace + stopAllowance
	select {
	case <-d.done:
	case <-time.After(bound + 30*time.Second):
		t.Fatalf("still running %s after SIGTERM with the database frozen", bound+30*time.Second)
	}
	took := time.Since(start)
	t.Logf("stopped %s after SIGTERM, exit %d", took.Round(time.Millisecond), d.cmd.ProcessState.ExitCode())
	if took > bound {
		t.Errorf("stopped %s after SIGTERM; want at most shutdown_timeout %s + StuckGrace %s (+ %s)", took.Round(time.Millisecond), shutdown, worker.StuckGrace, stopAllowance)
	}
	if after := d.stderr.String()[before:]; strings.Contains(after, "succeed again") {
		t.Errorf("the log says the database answers again while it is frozen:\n%s", after)
	}
}
