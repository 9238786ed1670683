package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// outageProducers enqueue while a test crashes, restarts or fails over
// the server: producers 0 and 1 unkeyed messages, 2 and 3 keys of their
// own (a key's messages commit in the order of their i, which each
// payload carries). An enqueue that fails (no server accepts writes) is
// tried again after 50 ms.
type outageProducers struct {
	b            bundle
	stop, paused atomic.Bool
	wg           sync.WaitGroup
}

func startOutageProducers(t *testing.T, b bundle) *outageProducers {
	t.Helper()
	p := &outageProducers{b: b}
	// A failing wait must not leave the producers running on a closed pool.
	t.Cleanup(p.end)
	for n := range 4 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := n * 1_000_000; !p.stop.Load(); i++ {
				for p.paused.Load() && !p.stop.Load() {
					time.Sleep(time.Millisecond)
				}
				key := ""
				if n >= 2 {
					key = fmt.Sprintf("p%d-%d", n, i%3)
				}
				_, err := b.outbox.Enqueue(context.Background(), b.pool, outbox.Message{
					Destination: "sink", OrderingKey: key, Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i, key),
				})
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return p
}

// pauseThenTail pauses the producers, waits until everything is
// recorded, enqueues tail in one transaction, and waits until it is
// recorded too.
func (p *outageProducers) pauseThenTail(t *testing.T, tail []outbox.Message) {
	t.Helper()
	p.paused.Store(true)
	time.Sleep(20 * time.Millisecond) // the enqueues under way end
	settled := func() bool { return p.b.counts(t)["pending"] == 0 }
	waitFor(t, 30*time.Second, "the messages before the tail recorded", settled)
	err := pgx.BeginFunc(context.Background(), p.b.pool, func(tx pgx.Tx) error {
		_, err := p.b.outbox.EnqueueBatch(context.Background(), tx, tail)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the tail recorded", settled)
}

func (p *outageProducers) resume() { p.paused.Store(false) }

// end stops the producers and waits for them.
func (p *outageProducers) end() {
	p.stop.Store(true)
	p.wg.Wait()
}

// slowWALWriter has the server of b write asynchronous commits only every
// 10 s (wal_writer_delay): a crash then loses the last moment's.
func slowWALWriter(t *testing.T, b bundle) {
	t.Helper()
	for _, q := range []string{`ALTER SYSTEM SET wal_writer_delay = '10s'`, `SELECT pg_reload_conf()`} {
		if _, err := b.pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

// outageConfig is the dispatcher the crash and failover tests run: one
// message of a key per claim (a key's messages recorded one transaction
// each), heartbeats and renewals 10 s apart (few other commits to flush
// the WAL), no River.
func outageConfig(c *worker.Config) {
	c.PerKeyBatch, c.AcquireInterval, c.LeaseTTL, c.DisableRiver = 1, 10*time.Second, 30*time.Second, true
}
