package worker

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

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

// Probes that arrive again after one that did not say so: the warning's
// "commits wake nothing" no longer holds. Probes are sent to the real
// database; the listener's part is played here.
func TestListenProbeSaysWhenNotificationsArriveAgain(t *testing.T) {
	t.Parallel()
	logs := &syncbuf.Buffer{}
	results := make(chan bool, 4)
	d := &Dispatcher{pool: pgtest.Pool(t), log: slog.New(slog.NewTextHandler(logs, nil)),
		probeSendTo: listenProbeChannel, probeWait: 2 * time.Second, probeEvery: 10 * time.Millisecond,
		probed: func(arrived bool) { results <- arrived }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &probe{}
	nonce := func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.nonce
	}
	// waitNonce waits for a probe with a nonce other than old.
	waitNonce := func(old string) string {
		deadline := time.Now().Add(30 * time.Second)
		for nonce() == old {
			if time.Now().After(deadline) {
				t.Fatalf("no new probe within 30 s; logs:\n%s", logs.String())
			}
			time.Sleep(time.Millisecond)
		}
		return nonce()
	}
	go d.probeListener(ctx, p)
	first := waitNonce("")
	if <-results {
		t.Fatal("a probe the listener never saw arrived")
	}
	second := waitNonce(first)
	p.arrived("someone else's")
	p.arrived(first)
	p.arrived(second)
	if !<-results {
		t.Fatalf("the second probe's arrival was not taken; logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "reach this dispatcher's listening connection again") {
		t.Fatalf("no line says notifications arrive again:\n%s", logs.String())
	}
}
