package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// PostgreSQL crashes three times (immediate shutdowns: the WAL not yet
// written is lost, the last moment's asynchronous commits with it) while
// producers enqueue keyed and unkeyed messages and the dispatcher drains.
// After recovery every message is delivered, and no key's message reaches
// the destination after its successor did: recordings of keyed results
// wait for their WAL flush, so one lost in a crash was never followed by
// its key's next message. Unkeyed messages whose recordings were lost are
// sent again, with the same idempotency key.
//
// Each crash comes as soon as the producers paused and everything was
// recorded, with nothing else committing: the WAL writer writes
// asynchronous commits every 10 s here (wal_writer_delay), leases are
// renewed every 5 s, and a claim takes one message of a key, so that a
// key's messages are recorded one transaction each. Recording keyed
// results asynchronously fails this test.
func TestPostgresCrashLosesNoMessageAndKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	b := bundle{pool: pgtest.Connect(t, cluster.URL(t)+"&pool_max_conns=10"), outbox: ob, sink: s}
	if _, err := b.pool.Exec(context.Background(), `ALTER SYSTEM SET wal_writer_delay = '10s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(context.Background(), `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.PerKeyBatch, c.AcquireInterval, c.LeaseTTL, c.DisableRiver = 1, 5*time.Second, 30*time.Second, true
	}))

	var (
		stop, paused atomic.Bool
		wg           sync.WaitGroup
	)
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Producers 0 and 1 enqueue unkeyed messages, 2 and 3 keys of
			// their own: a key's messages commit in the order of their i.
			for i := p * 1_000_000; !stop.Load(); i++ {
				for paused.Load() && !stop.Load() {
					time.Sleep(time.Millisecond)
				}
				key := ""
				if p >= 2 {
					key = fmt.Sprintf("p%d-%d", p, i%3)
				}
				_, err := b.outbox.Enqueue(context.Background(), b.pool, outbox.Message{
					Destination: "sink", OrderingKey: key, Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i, key),
				})
				if err != nil {
					time.Sleep(50 * time.Millisecond) // the server is down
					continue
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	for crash := range 3 {
		at := len(s.Requests())
		waitFor(t, 30*time.Second, fmt.Sprintf("deliveries before crash %d", crash+1), func() bool { return len(s.Requests()) > at+200 })
		paused.Store(true)
		time.Sleep(20 * time.Millisecond) // the enqueues under way end
		waitFor(t, 30*time.Second, "the messages before the crash recorded", func() bool { return b.counts(t)["pending"] == 0 })
		cluster.Crash()
		time.Sleep(300 * time.Millisecond)
		cluster.Start(t)
		paused.Store(false)
	}
	at := len(s.Requests())
	waitFor(t, 30*time.Second, "deliveries after the last crash", func() bool { return len(s.Requests()) > at+200 })
	stop.Store(true)
	wg.Wait()

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
	reqs := s.Requests()
	samePayloadSameKey(t, reqs)
	last := map[string]int{}
	repeats := map[bool]int{}
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
	sent := map[string]int{}
	for _, r := range reqs {
		sent[r.IdempotencyKey]++
		if sent[r.IdempotencyKey] == 2 {
			repeats[decode(t, r).Key != ""]++
		}
	}
	t.Logf("%d messages, %d requests; sent again after the crashes: %d unkeyed, %d keyed", rows, len(reqs), repeats[false], repeats[true])
}
