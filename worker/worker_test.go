package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

type payload struct {
	I   int    `json:"i"`
	Key string `json:"key"`
}

func decode(t *testing.T, r sink.Request) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(r.Payload, &p); err != nil {
		t.Fatalf("payload %q: %v", r.Payload, err)
	}
	return p
}

// samePayloadSameKey checks that every attempt of one message carried the
// same idempotency key.
func samePayloadSameKey(t *testing.T, reqs []sink.Request) {
	t.Helper()
	keyOf := map[int]string{}
	for _, r := range reqs {
		p := decode(t, r)
		if k, ok := keyOf[p.I]; ok && k != r.IdempotencyKey {
			t.Fatalf("message %d sent with keys %s and %s", p.I, k, r.IdempotencyKey)
		}
		keyOf[p.I] = r.IdempotencyKey
	}
}

func TestDeliversEveryMessage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 10000
	b.enqueue(t, n, 500, func(i int) string {
		if i%2 == 0 {
			return ""
		}
		return fmt.Sprintf("k%d", i%50)
	})
	b.start(t, b.config(t, nil))
	c := b.waitSettled(t, 90*time.Second)
	if c["delivered"] != n {
		t.Fatalf("statuses %v, want %d delivered", c, n)
	}
	seen := b.checkKeys(t)
	if len(seen) != n {
		t.Fatalf("%d distinct keys at the sink, want %d", len(seen), n)
	}
	// No faults in this run: no message may have been sent twice.
	for k, times := range seen {
		if times != 1 {
			t.Fatalf("key %s sent %d times in a run without faults", k, times)
		}
	}
	samePayloadSameKey(t, b.sink.Requests())
}

func TestRandomFailuresAreRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		if rand.Float64() < 0.3 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	}
	const n = 1000
	b.enqueue(t, n, 100, func(int) string { return "" })
	b.start(t, b.config(t, nil))
	if c := b.waitSettled(t, 60*time.Second); c["delivered"] != n {
		t.Fatalf("statuses %v", c)
	}
	reqs := b.sink.Requests()
	samePayloadSameKey(t, reqs)
	if len(reqs) <= n {
		t.Fatalf("%d requests for %d messages with 30%% failures", len(reqs), n)
	}
	// Backoff: the attempt after a failure comes at least Base/2 (the jitter
	// floor, 10 ms) after it.
	last := map[string]time.Time{}
	retries := 0
	for _, r := range reqs {
		if prev, ok := last[r.IdempotencyKey]; ok {
			retries++
			if gap := r.At.Sub(prev); gap < 10*time.Millisecond {
				t.Fatalf("retry of %s came %s after the failure", r.IdempotencyKey, gap)
			}
		}
		last[r.IdempotencyKey] = r.At
	}
	if retries == 0 {
		t.Fatal("no retries observed")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var once sync.Once
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		status := http.StatusOK
		once.Do(func() { status = http.StatusTooManyRequests })
		return status, http.Header{"Retry-After": {"2"}}
	}
	b.enqueue(t, 1, 1, func(int) string { return "" })
	// Retry-After is honoured up to the policy's max (see
	// TestRetryAfterIsCappedAtMax), so the max must exceed it here.
	b.start(t, b.config(t, func(c *worker.Config) { c.Retry.Max = 5 * time.Second }))
	b.waitSettled(t, 20*time.Second)
	reqs := b.sink.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 2*time.Second {
		t.Fatalf("second attempt %s after a 429 with Retry-After: 2", gap)
	}
}

func TestBadRequestIsDeadAfterOneAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) { return http.StatusBadRequest, nil }
	b.enqueue(t, 1, 1, func(int) string { return "" })
	b.start(t, b.config(t, nil))
	if c := b.waitSettled(t, 20*time.Second); c["dead"] != 1 {
		t.Fatalf("statuses %v", c)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(b.sink.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	dead, err := b.outbox.ListDead(context.Background(), b.pool, outbox.Filter{Destination: "sink"}, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters: %v %v", dead, err)
	}
	attempts, err := b.outbox.Attempts(context.Background(), b.pool, dead[0].ID)
	if err != nil || len(attempts) != 1 || attempts[0].StatusCode == nil || *attempts[0].StatusCode != 400 || attempts[0].Outcome != "dead" {
		t.Fatalf("attempts: %+v %v", attempts, err)
	}
}

func TestGoneDestinationIsPaused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var (
		mu   sync.Mutex
		gone = true
	)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return http.StatusGone, nil
		}
		return http.StatusOK, nil
	}
	b.enqueue(t, 5, 5, func(int) string { return "one-key" })
	b.start(t, b.config(t, nil))
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		paused, err := b.outbox.PausedDestinations(ctx, b.pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(paused) == 1 && paused[0].Name == "sink" {
			if paused[0].Reason != "HTTP 410 Gone" {
				t.Fatalf("pause reason %q; want the destination's own %q, once", paused[0].Reason, "HTTP 410 Gone")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("destination not paused after a 410")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.enqueue(t, 5, 5, func(int) string { return "" })
	time.Sleep(1500 * time.Millisecond)
	if n := len(b.sink.Requests()); n != 1 {
		t.Fatalf("%d requests reached a paused destination, want only the one that answered 410", n)
	}
	if c := b.counts(t); c["pending"] != 10 {
		t.Fatalf("statuses %v: paused messages must wait", c)
	}
	mu.Lock()
	gone = false
	mu.Unlock()
	if err := b.outbox.ResumeDestination(ctx, b.pool, "sink"); err != nil {
		t.Fatal(err)
	}
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 10 {
		t.Fatalf("after resume: %v", c)
	}
}

// Per key, the sink never sees a message before the previous one of its key
// was delivered, and keys are delivered in commit order.
func TestPerKeyOrderUnderFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const keys, perKey = 20, 200
	var (
		mu        sync.Mutex
		delivered = map[string]int{} // key -> last delivered index
		violation string
	)
	b.sink.Respond = func(r *http.Request, body []byte) (int, http.Header) {
		var p payload
		_ = json.Unmarshal(body, &p)
		status := http.StatusOK
		if rand.Float64() < 0.2 {
			status = http.StatusInternalServerError
		}
		mu.Lock()
		defer mu.Unlock()
		idx := p.I % perKey
		last, ok := delivered[p.Key]
		if !ok {
			last = -1
		}
		// A re-send of an already delivered message is allowed; anything
		// beyond the next one is not.
		if idx > last+1 && violation == "" {
			violation = fmt.Sprintf("key %s: message %d sent while %d was the last delivered", p.Key, idx, last)
		}
		if status == http.StatusOK && idx == last+1 {
			delivered[p.Key] = idx
		}
		return status, nil
	}
	// One goroutine per key enqueues its messages in order, one transaction
	// each, so per key the commit order is the index order; the keys
	// interleave.
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perKey; i++ {
				_, err := b.outbox.Enqueue(context.Background(), b.pool, outbox.Message{
					Destination: "sink", OrderingKey: fmt.Sprintf("key-%d", k),
					Payload: fmt.Appendf(nil, `{"i":%d,"key":"key-%d"}`, k*perKey+i, k),
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	b.start(t, b.config(t, nil))
	wg.Wait()
	if c := b.waitSettled(t, 120*time.Second); c["delivered"] != keys*perKey {
		t.Fatalf("statuses %v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if violation != "" {
		t.Fatal(violation)
	}
	for k := 0; k < keys; k++ {
		if got := delivered[fmt.Sprintf("key-%d", k)]; got != perKey-1 {
			t.Fatalf("key-%d: last delivered %d", k, got)
		}
	}
	samePayloadSameKey(t, b.sink.Requests())
}

func TestTwoDispatchersShareTheWork(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var (
		mu      sync.Mutex
		lastIdx = map[string]int{}
		bad     string
	)
	b.sink.Respond = func(r *http.Request, body []byte) (int, http.Header) {
		var p payload
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		defer mu.Unlock()
		if last, ok := lastIdx[p.Key]; ok && p.I < last && bad == "" {
			bad = fmt.Sprintf("key %s: %d after %d", p.Key, p.I, last)
		}
		lastIdx[p.Key] = max(lastIdx[p.Key], p.I)
		return http.StatusOK, nil
	}
	const n = 3000
	b.enqueue(t, n, 300, func(i int) string { return fmt.Sprintf("k%d", i%40) })
	d1 := b.start(t, b.config(t, func(c *worker.Config) { c.ID = "one" }))
	d2 := b.start(t, b.config(t, func(c *worker.Config) { c.ID = "two" }))
	if c := b.waitSettled(t, 60*time.Second); c["delivered"] != n {
		t.Fatalf("statuses %v", c)
	}
	if bad != "" {
		t.Fatal(bad)
	}
	seen := b.checkKeys(t)
	if len(seen) != n {
		t.Fatalf("%d keys at the sink", len(seen))
	}
	// Both took a share of the lanes.
	deadline := time.Now().Add(5 * time.Second)
	for len(d1.Lanes()) == 0 || len(d2.Lanes()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("lanes: one %v, two %v", d1.Lanes(), d2.Lanes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var byDispatcher int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(DISTINCT dispatcher) FROM outboxd.outbox_attempt_log`).Scan(&byDispatcher); err != nil {
		t.Fatal(err)
	}
	if byDispatcher != 2 {
		t.Fatalf("attempts recorded by %d dispatchers, want both", byDispatcher)
	}
}

func TestGracefulStopFinishesInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	arrived := make(chan struct{}, 100)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		arrived <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		return http.StatusOK, nil
	}
	b.enqueue(t, 20, 20, func(int) string { return "" })
	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// Everything the sink accepted is recorded as delivered: nothing that
	// went out is left to be sent again.
	c := b.counts(t)
	if got := len(b.sink.Accepted()); c["delivered"] != got || got == 0 {
		t.Fatalf("sink accepted %d, recorded delivered %v", got, c)
	}
	var owned int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_lanes WHERE owner IS NOT NULL`).Scan(&owned); err != nil {
		t.Fatal(err)
	}
	if owned != 0 {
		t.Fatalf("%d leases still held after Stop", owned)
	}
}

func TestRequeueDeadLetterKeepsKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var (
		mu     sync.Mutex
		status = http.StatusUnprocessableEntity
	)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		return status, nil
	}
	b.enqueue(t, 3, 3, func(int) string { return "" })
	b.start(t, b.config(t, nil))
	if c := b.waitSettled(t, 20*time.Second); c["dead"] != 3 {
		t.Fatalf("statuses %v", c)
	}
	ctx := context.Background()
	dead, err := b.outbox.ListDead(ctx, b.pool, outbox.Filter{}, 10)
	if err != nil || len(dead) != 3 {
		t.Fatalf("%v %v", dead, err)
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	n, err := b.outbox.Requeue(ctx, b.pool, outbox.Filter{IDs: []uuid.UUID{dead[0].ID}})
	if err != nil || n != 1 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	c := b.waitSettled(t, 20*time.Second)
	if c["delivered"] != 1 || c["dead"] != 2 {
		t.Fatalf("statuses %v", c)
	}
	reqs := b.sink.Requests()
	if last := reqs[len(reqs)-1]; last.IdempotencyKey != dead[0].IdempotencyKey || last.Status != 200 {
		t.Fatalf("requeued message went out with key %s, want %s", last.IdempotencyKey, dead[0].IdempotencyKey)
	}
	purged, err := b.outbox.PurgeDead(ctx, b.pool, outbox.Filter{Destination: "sink", Until: time.Now().Add(time.Minute)})
	if err != nil || purged != 2 {
		t.Fatalf("purge: %d %v", purged, err)
	}
}

func TestExhaustedAttemptsGoToDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) { return http.StatusServiceUnavailable, nil }
	b.enqueue(t, 2, 2, func(int) string { return "same" })
	b.start(t, b.config(t, func(c *worker.Config) { c.Retry.MaxAttempts = 3 }))
	if c := b.waitSettled(t, 20*time.Second); c["dead"] != 2 {
		t.Fatalf("statuses %v", c)
	}
	// Each got exactly its three attempts; the second of the key went out
	// only after the first was dead-lettered.
	seen := b.checkKeys(t)
	for k, n := range seen {
		if n != 3 {
			t.Fatalf("key %s attempted %d times, want 3", k, n)
		}
	}
	reqs := b.sink.Requests()
	if decode(t, reqs[0]).I != 0 || decode(t, reqs[2]).I != 0 || decode(t, reqs[3]).I != 1 {
		t.Fatal("the key's second message was attempted before the first was dead")
	}
}
