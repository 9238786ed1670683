package worker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/worker"
)

// A Dispatcher starts at most once: after a Stop, even one that came
// before Start (a shutdown racing the startup), Start says to make a new
// one, rather than run a dispatcher its owner already stopped.
func TestStartAfterStopIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const want = "worker: Dispatcher was stopped; make a new one with New"

	early, err := worker.New(b.pool, b.config(t, func(c *worker.Config) { c.DisableRiver = true }))
	if err != nil {
		t.Fatal(err)
	}
	if err := early.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start: %v, want nil", err)
	}
	if err := early.Start(ctx); err == nil || err.Error() != want {
		t.Fatalf("Start after an early Stop: %v, want %q", err, want)
	}
	if early.Ready() {
		t.Fatal("ready after a refused Start")
	}

	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("Start twice: %v, want already started", err)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err == nil || err.Error() != want {
		t.Fatalf("Start after Stop: %v, want %q", err, want)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop after the refused Start: %v", err)
	}
}
