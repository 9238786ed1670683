// Package dispatchtest is the conformance suite that every destination
// passes: the payload arrives intact, every attempt carries the message's
// idempotency key, concurrent use is safe, and a cancelled context ends an
// attempt promptly without claiming delivery.
package dispatchtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
)

// Received is one delivery as the downstream saw it.
type Received struct {
	IdempotencyKey string
	Payload        []byte
}

// Subject is a destination under test and a view of its downstream.
type Subject struct {
	Destination dispatch.Destination
	// Received returns what the downstream has received so far. A
	// downstream that dedupes on the idempotency key (JetStream) may show a
	// repeated attempt once.
	Received func() []Received
	// Dedupes is true when the downstream keeps one copy per key.
	Dedupes bool
}

// Run runs the suite; newSubject gives each subtest a fresh destination.
func Run(t *testing.T, newSubject func(t *testing.T) Subject) {
	t.Run("DeliversPayloadIntact", func(t *testing.T) {
		s := newSubject(t)
		msg := message("payload", []byte("{\"a\":1}\n\x00\xff"))
		if res := s.Destination.Deliver(context.Background(), msg); res.Outcome != dispatch.Delivered {
			t.Fatalf("outcome %s", res)
		}
		got := waitFor(t, s, 1)
		if !bytes.Equal(got[0].Payload, msg.Payload) || got[0].IdempotencyKey != msg.IdempotencyKey {
			t.Fatalf("received %+v, sent key %s payload %q", got[0], msg.IdempotencyKey, msg.Payload)
		}
	})

	t.Run("SameKeyOnEveryAttempt", func(t *testing.T) {
		s := newSubject(t)
		msg := message("retry", []byte(`{"n":1}`))
		for attempt := 1; attempt <= 3; attempt++ {
			msg.Attempt = attempt
			if res := s.Destination.Deliver(context.Background(), msg); res.Outcome != dispatch.Delivered {
				t.Fatalf("attempt %d: %s", attempt, res)
			}
		}
		want := 3
		if s.Dedupes {
			want = 1
		}
		got := waitFor(t, s, want)
		if len(got) != want {
			t.Fatalf("downstream holds %d copies, want %d", len(got), want)
		}
		for _, r := range got {
			if r.IdempotencyKey != msg.IdempotencyKey {
				t.Fatalf("attempt carried key %q, want %q", r.IdempotencyKey, msg.IdempotencyKey)
			}
		}
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		s := newSubject(t)
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if res := s.Destination.Deliver(context.Background(), message(fmt.Sprint(i), []byte(fmt.Sprint(i)))); res.Outcome != dispatch.Delivered {
					errs <- res.String()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
		got := waitFor(t, s, n)
		keys := map[string]bool{}
		for _, r := range got {
			keys[r.IdempotencyKey] = true
		}
		if len(keys) != n {
			t.Fatalf("%d distinct keys arrived, want %d", len(keys), n)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s := newSubject(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		res := s.Destination.Deliver(ctx, message("cancelled", []byte(`{}`)))
		if res.Outcome == dispatch.Delivered {
			t.Fatal("delivered with a cancelled context")
		}
		if res.Outcome != dispatch.Retry {
			t.Fatalf("outcome %s, want retry: the message must not be lost", res)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %s to notice the cancelled context", d)
		}
	})
}

func message(name string, payload []byte) dispatch.Message {
	id := uuid.Must(uuid.NewV7())
	return dispatch.Message{
		ID: id, Destination: "conformance", Type: "test." + name, Payload: payload,
		IdempotencyKey: "key-" + id.String(), Attempt: 1, CreatedAt: time.Now(),
	}
}

// waitFor polls until the downstream holds at least n deliveries (or 5 s).
func waitFor(t *testing.T, s Subject, n int) []Received {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.Received()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				t.Fatalf("downstream has %d deliveries, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
