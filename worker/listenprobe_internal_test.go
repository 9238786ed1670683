package worker

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
)

// The probes' bounds are those docs/operations.md gives: a warning 10 s
// after a probe that did not come back, a probe every 5 minutes.
func TestListenProbeBoundsAreTheDocumented(t *testing.T) {
	if listenProbeWait != 10*time.Second || listenProbeEvery != 5*time.Minute {
		t.Fatalf("wait %s, every %s; docs/operations.md says 10s and 5m", listenProbeWait, listenProbeEvery)
	}
}

// prober runs d's prober on a probe whose arrivals the test plays (the
// probes are sent to the real database), and returns it, its results and
// a function that waits for the next nonce other than old.
func prober(t *testing.T, wait, every time.Duration) (p *probe, logs *syncbuf.Buffer, result func() bool, nextNonce func(old string) string, failing func() float64) {
	t.Helper()
	logs = &syncbuf.Buffer{}
	results := make(chan bool, 4)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	failing = func() float64 { return testutil.ToFloat64(m.probeFailing) }
	d := &Dispatcher{pool: pgtest.Pool(t), log: slog.New(slog.NewTextHandler(logs, nil)), cfg: Config{Metrics: m},
		probeSendTo: listenProbeChannel, probeWait: wait, probeEvery: every,
		probed: func(arrived bool) { results <- arrived }}
	ctx, cancel := context.WithCancel(context.Background())
	p = &probe{}
	done := make(chan struct{})
	go func() { defer close(done); d.probeListener(ctx, p) }()
	t.Cleanup(func() { cancel(); <-done })
	result = func() bool {
		select {
		case r := <-results:
			return r
		case <-time.After(time.Minute):
			t.Fatalf("no probe result within a minute; logs:\n%s", logs.String())
			return false
		}
	}
	nextNonce = func(old string) string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			p.mu.Lock()
			n := p.nonce
			p.mu.Unlock()
			if n != old {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new probe within 30 s; logs:\n%s", logs.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	return p, logs, result, nextNonce, failing
}

// Probes that arrive again after one that did not say so: the warning's
// "commits wake nothing" no longer holds.
func TestListenProbeSaysWhenNotificationsArriveAgain(t *testing.T) {
	t.Parallel()
	p, logs, result, nextNonce, failing := prober(t, 5*time.Second, 10*time.Millisecond)
	first := nextNonce("")
	if result() {
		t.Fatal("a probe the listener never saw arrived")
	}
	if v := failing(); v != 1 {
		t.Fatalf("outboxd_listen_probe_failing %v after a failed probe, want 1", v)
	}
	second := nextNonce(first)
	p.arrived("someone else's")
	p.arrived(second)
	if !result() {
		t.Fatalf("the second probe's arrival was not taken; logs:\n%s", logs.String())
	}
	if v := failing(); v != 0 {
		t.Fatalf("outboxd_listen_probe_failing %v after a probe came back, want 0", v)
	}
	if !strings.Contains(logs.String(), "reach this dispatcher's listening connection again") {
		t.Fatalf("no line says notifications arrive again:\n%s", logs.String())
	}
}

// A probe that arrives after the warning is said to, at once, not at the
// next probe 5 minutes later: the warning no longer holds.
func TestListenProbeSaysWhenItsProbeArrivesLate(t *testing.T) {
	t.Parallel()
	p, logs, result, nextNonce, failing := prober(t, 200*time.Millisecond, time.Hour)
	first := nextNonce("")
	if result() {
		t.Fatal("a probe the listener never saw arrived")
	}
	p.arrived(first)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "probe arrived late: notifications reach it, slowly") {
		if time.Now().After(deadline) {
			t.Fatalf("no line says the probe arrived late:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	if v := failing(); v != 0 {
		t.Fatalf("outboxd_listen_probe_failing %v after the late probe, want 0", v)
	}
}
