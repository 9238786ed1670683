package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

type bundle struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
	sink   *sink.Sink
}

func setup(t *testing.T) bundle {
	t.Helper()
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	return bundle{pool: pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=10"), outbox: ob, sink: s}
}

// clusterBundle is setup on a server of the test's own, for tests that
// stop or crash it.
func clusterBundle(t *testing.T) (*pgtest.Cluster, bundle) {
	t.Helper()
	cluster := pgtest.NewCluster(t)
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	return cluster, bundle{pool: pgtest.Connect(t, cluster.URL(t)+"&pool_max_conns=10"), outbox: ob, sink: s}
}

// config is a dispatcher configuration for tests: fast intervals, one HTTP
// destination "sink".
func (b bundle) config(t *testing.T, mutate func(*worker.Config)) *worker.Config {
	t.Helper()
	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: b.sink.URL(), MaxConcurrency: 32, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &worker.Config{
		Destinations:    map[string]dispatch.Destination{"sink": dest},
		Retry:           worker.RetryPolicy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond, MaxAttempts: 50},
		LeaseTTL:        2 * time.Second,
		AcquireInterval: 200 * time.Millisecond,
		SweepInterval:   100 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

func (b bundle) start(t *testing.T, cfg *worker.Config) *worker.Dispatcher {
	t.Helper()
	return b.startWith(t, cfg, nil)
}

// startWith is start, calling before (if not nil) between New and Start.
func (b bundle) startWith(t *testing.T, cfg *worker.Config, before func(*worker.Dispatcher)) *worker.Dispatcher {
	t.Helper()
	d, err := worker.New(b.pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(d)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return d
}

// enqueue commits n messages for destination "sink" in transactions of
// batch messages; key(i) gives each one's ordering key ("" for none).
func (b bundle) enqueue(t *testing.T, n, batch int, key func(i int) string) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += batch {
		var msgs []outbox.Message
		for i := start; i < min(start+batch, n); i++ {
			msgs = append(msgs, outbox.Message{
				Destination: "sink", Type: "test", OrderingKey: key(i),
				Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i, key(i)),
			})
		}
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.outbox.EnqueueBatch(ctx, tx, msgs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds and returns how long that took, or
// fails the test after bound, saying what did not happen.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not after %s", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start).Round(time.Millisecond)
}

// waitFirstClaims waits for the first claim of each of destination's 32
// lanes: what start-up claims is then behind a test's count.
func waitFirstClaims(t *testing.T, reg *prometheus.Registry, destination string) {
	t.Helper()
	waitFor(t, 20*time.Second, "every lane's first claim of "+destination, func() bool { return claims(t, reg, destination) >= 32 })
}

// counts returns how many messages are in each status.
func (b bundle) counts(t *testing.T) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT status, count(*) FROM outboxd.outbox_messages GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// waitSettled waits until no message is pending.
func (b bundle) waitSettled(t *testing.T, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := b.counts(t)
		if c["pending"] == 0 {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("still pending after %s: %v", timeout, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkAllDelivered waits until nothing is pending, checks that every
// stored message was delivered and reached the sink, and that one
// idempotency key always carried one payload, and returns how many
// messages are stored.
func (b bundle) checkAllDelivered(t *testing.T) int {
	t.Helper()
	c := b.waitSettled(t, 60*time.Second)
	var rows int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if c["delivered"] != rows {
		t.Fatalf("statuses %v of %d messages", c, rows)
	}
	if seen := b.checkKeys(t); len(seen) != rows {
		t.Fatalf("%d messages reached the sink, %d were committed", len(seen), rows)
	}
	samePayloadSameKey(t, b.sink.Requests())
	return rows
}

// checkKeyOrder checks that no key's message reached the sink after its
// successor (payloads numbered in each key's commit order), and returns
// how many messages were sent more than once, keyed (true) and unkeyed.
func checkKeyOrder(t *testing.T, reqs []sink.Request) map[bool]int {
	t.Helper()
	last := map[string]int{}
	for _, r := range reqs {
		p := decode(t, r)
		if p.Key == "" {
			continue
		}
		if prev, ok := last[p.Key]; ok && p.I < prev {
			t.Fatalf("key %s: message %d reached the sink after its successor %d", p.Key, p.I, prev)
		}
		last[p.Key] = p.I
	}
	repeats := map[bool]int{}
	sent := map[string]int{}
	for _, r := range reqs {
		if sent[r.IdempotencyKey]++; sent[r.IdempotencyKey] == 2 {
			repeats[decode(t, r).Key != ""]++
		}
	}
	return repeats
}

// keysByMessage maps each message's idempotency key to its id, checking
// that every request the sink saw carries the key of a stored message.
func (b bundle) checkKeys(t *testing.T) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT idempotency_key FROM outboxd.outbox_messages`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}
	seen := map[string]int{}
	for _, r := range b.sink.Requests() {
		if !known[r.IdempotencyKey] {
			t.Fatalf("request with unknown idempotency key %q", r.IdempotencyKey)
		}
		if r.Header.Get("Webhook-Id") != r.IdempotencyKey {
			t.Fatalf("webhook-id %q differs from Idempotency-Key %q", r.Header.Get("Webhook-Id"), r.IdempotencyKey)
		}
		seen[r.IdempotencyKey]++
	}
	return seen
}

// hangingDispatcher starts a dispatcher on ctx whose one message the sink
// holds open until the dispatcher cuts it off; it returns once the message
// is in flight and the dispatcher reports ready, so that a later "not
// ready" means a stop began (waitStopping). The message can be in flight
// before the LISTEN connection or the first balancing round made it ready:
// since claims stopped waiting for a WAL flush, often enough that a test
// took the start for a stop.
func hangingDispatcher(ctx context.Context, t *testing.T, b bundle) (*worker.Dispatcher, uuid.UUID) {
	t.Helper()
	bg := context.Background()
	hung := make(chan struct{}, 1)
	b.sink.Respond = func(r *http.Request, body []byte) (int, http.Header) {
		if strings.Contains(string(body), `"hang"`) {
			hung <- struct{}{}
			<-r.Context().Done()
		}
		return http.StatusOK, nil
	}
	res, err := b.outbox.Enqueue(bg, b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{"hang":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(bg) })
	select {
	case <-hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the message was never sent")
	}
	for deadline := time.Now().Add(10 * time.Second); !d.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never reported ready")
		}
	}
	return d, res.ID
}

// failingFirst fails its first n deliveries with fail (which may panic),
// then delivers.
type failingFirst struct {
	n     int32
	fail  func() dispatch.Result
	calls atomic.Int32
}

func (f *failingFirst) Deliver(context.Context, dispatch.Message) dispatch.Result {
	if f.calls.Add(1) <= f.n {
		return f.fail()
	}
	return dispatch.Result{Outcome: dispatch.Delivered}
}

// onlyAttempts waits until the one message enqueued is delivered and
// returns its attempts.
func (b bundle) onlyAttempts(t *testing.T) []outbox.Attempt {
	t.Helper()
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 1 {
		t.Fatalf("statuses %v", c)
	}
	return b.attemptsOfTheOnly(t)
}

// attemptsOfTheOnly returns the attempts of the one message enqueued.
func (b bundle) attemptsOfTheOnly(t *testing.T) []outbox.Attempt {
	t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	if err := b.pool.QueryRow(ctx, `SELECT id FROM outboxd.outbox_messages`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	attempts, err := b.outbox.Attempts(ctx, b.pool, id)
	if err != nil {
		t.Fatal(err)
	}
	return attempts
}

// unannounced returns an Outbox whose commits wake no dispatcher: its
// Notifier runs but cannot reach the database (as when its connection is
// down), so only the lanes' sweeps find what it enqueues. (A Notifier
// never started would not do: Enqueue then NOTIFYs in the transaction.)
func unannounced(t *testing.T) *outbox.Outbox {
	t.Helper()
	ctx := context.Background()
	away, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/away?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(away.Close)
	n, err := outbox.NewNotifier(away, &outbox.NotifierConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ob, err := outbox.New(&outbox.Config{Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	return ob
}
