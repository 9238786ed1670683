package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// The primary crashes and its synchronous standby is promoted, while
// producers enqueue keyed and unkeyed messages through a URL naming both
// servers. Every recording waited for the standby (unkeyed ones too: the
// server names a synchronous standby), so the failover re-sends nothing
// that was recorded: after it, every message is delivered, none twice,
// and no key's message after its successor.
//
// Before the crash the producers pause, everything is recorded, and one
// transaction enqueues a tail of 12 unkeyed messages; the crash comes once
// the tail is recorded. The primary's WAL writer writes asynchronous
// commits every 10 s here (wal_writer_delay), and the standby receives only
// what was written: unkeyed recordings committed asynchronously, as
// without a synchronous standby, would be lost with the primary and sent
// again.
func TestFailoverToASynchronousStandbyResendsNothing(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	standby := cluster.AddSynchronousStandby(t)
	url := cluster.URL(t) // created after the standby's base backup: replicated
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER SYSTEM SET wal_writer_delay = '10s'`, `SELECT pg_reload_conf()`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	b := bundle{pool: pgtest.Connect(t, standby.FailoverURL(t, url)+"&pool_max_conns=10"), outbox: ob, sink: s}
	b.start(t, b.config(t, func(c *worker.Config) {
		c.PerKeyBatch, c.AcquireInterval, c.LeaseTTL, c.DisableRiver = 1, 10*time.Second, 30*time.Second, true
	}))

	var (
		stop, paused atomic.Bool
		wg           sync.WaitGroup
	)
	// A failing wait must not leave the producers running on a closed pool.
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
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
				_, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{
					Destination: "sink", OrderingKey: key, Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i, key),
				})
				if err != nil {
					time.Sleep(50 * time.Millisecond) // no server accepts writes
					continue
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	waitFor(t, 30*time.Second, "deliveries before the failover", func() bool { return len(s.Requests()) > 200 })
	paused.Store(true)
	time.Sleep(20 * time.Millisecond) // the enqueues under way end
	settled := func() bool { return b.counts(t)["pending"] == 0 }
	waitFor(t, 30*time.Second, "the messages before the failover recorded", settled)
	var tail []outbox.Message
	for n := range 12 {
		tail = append(tail, outbox.Message{Destination: "sink", Payload: fmt.Appendf(nil, `{"i":%d,"key":""}`, tailFirst+n)})
	}
	if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.outbox.EnqueueBatch(ctx, tx, tail)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the tail recorded before the failover", settled)
	cluster.Crash()
	standby.Promote(t)
	paused.Store(false)
	at := len(s.Requests())
	waitFor(t, 60*time.Second, "deliveries after the failover", func() bool { return len(s.Requests()) > at+200 })
	stop.Store(true)
	wg.Wait()

	rows := b.checkAllDelivered(t)
	reqs := s.Requests()
	if repeats := checkKeyOrder(t, reqs); repeats[false]+repeats[true] != 0 {
		t.Fatalf("sent again after the failover: %d unkeyed, %d keyed; want none (every recording waited for the standby)", repeats[false], repeats[true])
	}
	t.Logf("%d messages, %d requests, none sent twice", rows, len(reqs))
}
