package outbox

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A Stop while a cancelled Start context's stop is still flushing waits for
// that flush (or returns its own context's error): returning at once would
// let the caller close the pool under the last announcement.
func TestNotifierStopWaitsForAStopUnderWay(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	bg := context.Background()
	if err := b.n.Stop(bg); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // a failure must not leave the run (and its connection) blocked
	b.n.asking = func() {
		if armed.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	if err := b.n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// An open transaction keeps the Notifier asking.
	tx, err := b.pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(bg) }()
	armed.Store(true)
	if _, err := b.ob.Enqueue(bg, tx, Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the Notifier never asked")
	}
	cancel()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b.n.mu.Lock()
		running := b.n.running
		b.n.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancel never began a stop")
		}
	}
	short, cancelShort := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancelShort()
	if err := b.n.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop during the final flush: %v, want its deadline", err)
	}
	unblock()
	if err := b.n.Stop(bg); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	b.n.mu.Lock()
	done := b.n.done
	b.n.mu.Unlock()
	select {
	case <-done:
	default:
		t.Fatal("Stop returned while the run was still going")
	}
}

// Start with a context already cancelled is an error, as for the
// dispatcher, and leaves the Notifier stopped.
func TestNotifierStartWithCancelledContext(t *testing.T) {
	t.Parallel()
	b := newNotifierBundle(t, nil)
	bg := context.Background()
	if err := b.n.Stop(bg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := b.n.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start(cancelled): %v, want context.Canceled", err)
	}
	if err := b.n.Start(bg); err != nil {
		t.Fatalf("Start after the failed one: %v", err)
	}
}
