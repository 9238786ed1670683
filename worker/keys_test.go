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

// The purge deletes ordering keys that no message names any more, and only
// those: a key with a message of any status stays.
func TestPurgeDeletesIdleOrderingKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.enqueue(t, 2500, 500, func(i int) string { return fmt.Sprintf("customer-%d", i) })
	// Every message but customer-7's was delivered long ago.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'delivered', delivered_at = now() - interval '8 days'
		WHERE ordering_key <> 'customer-7'`); err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(b.pool, b.config(t, func(c *worker.Config) { c.DisableRiver = true }))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Purge(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	rows, _ := b.pool.Query(ctx, `SELECT ordering_key FROM outboxd.outbox_keys`)
	if keys, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if res.DeliveredMessages != 2499 || res.OrderingKeys != 2499 || len(keys) != 1 || keys[0] != "customer-7" {
		t.Fatalf("purged %+v; keys left %v", res, keys)
	}
}

// The key purge racing producers that reuse the same keys, while messages
// are purged under them: no enqueue ever fails on the (ordering_key, seq)
// unique index, and per key the messages that remain have sequence numbers
// in the order their transactions committed (a key deleted while one of
// its messages still existed would restart below it).
func TestKeyPurgeRacingEnqueuesKeepsSequences(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `CREATE TABLE commits (n bigserial PRIMARY KEY, id uuid NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(b.pool, b.config(t, func(c *worker.Config) {
		c.DisableRiver = true
		c.Maintenance.DeliveredRetention = time.Millisecond
		c.Maintenance.Duty = 1 // no rests: race as often as possible
	}))
	if err != nil {
		t.Fatal(err)
	}
	// A key is purged only in a cycle where no producer enqueued to it
	// between the cycle's UPDATE and its purge. With 3 keys the 4 producers
	// kept every key busy in all but 1 cycle of 12, and a loaded CI run
	// purged 15 in 1,600 cycles; 12 keys leave some idle in most cycles,
	// whatever the producers' pace, while each key still meets an enqueue
	// every few milliseconds. 25 cycles or more, each meeting the producers.
	const keys, wantPurges, wantCycles, wantEnqueues, perCycle = 12, 75, 25, 1000, 40
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		enqueued atomic.Int64
		purged   atomic.Int64
		cycles   atomic.Int64
		errs     = make(chan error, 16)
	)
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("k%d", (p*keys/4+i)%keys)
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					e, err := b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte(`{}`)})
					if err != nil {
						return err
					}
					// Last in the transaction, under the key's row lock: per
					// key, this log is in commit order.
					_, err = tx.Exec(ctx, `INSERT INTO commits (id) VALUES ($1)`, e.ID)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				enqueued.Add(1)
				time.Sleep(time.Duration(i%3) * time.Millisecond) // let keys run empty now and then
				// At most perCycle enqueues per purge cycle: on a loaded
				// machine the producers would otherwise keep every key busy
				// and the purges would find none idle.
				for enqueued.Load() > (cycles.Load()+1)*perCycle && !stop.Load() {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // check, then deliver and purge everything, keys included, over and over
		defer wg.Done()
		for !stop.Load() {
			if err := checkCommitOrder(ctx, b); err != nil {
				errs <- err
				return
			}
			if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'delivered', delivered_at = now() - interval '1 hour'
				WHERE status = 'pending'`); err != nil {
				errs <- err
				return
			}
			res, err := d.Purge(ctx, time.Second)
			if err != nil {
				errs <- err
				return
			}
			purged.Add(res.OrderingKeys)
			// The log of a purged message is no longer checked: dropping it
			// keeps each check as cheap as the messages that remain.
			if _, err := b.pool.Exec(ctx, `DELETE FROM commits c WHERE NOT EXISTS (SELECT 1 FROM outboxd.outbox_messages m WHERE m.id = c.id)`); err != nil {
				errs <- err
				return
			}
			cycles.Add(1)
		}
	}()
	// Enough purges to meet enqueues of the same key many times; the
	// deadline only bounds a loaded machine (the suite runs in parallel).
	deadline := time.Now().Add(150 * time.Second)
	for (purged.Load() < wantPurges || cycles.Load() < wantCycles || enqueued.Load() < wantEnqueues) &&
		time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if purged.Load() < wantPurges {
		t.Fatalf("only %d keys purged beside %d enqueues: the race was not exercised", purged.Load(), enqueued.Load())
	}
	if err := checkCommitOrder(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d enqueues, %d key purges in %d cycles", enqueued.Load(), purged.Load(), cycles.Load())
}

// checkCommitOrder: per key, the messages that exist now have sequence
// numbers in the order their transactions committed.
func checkCommitOrder(ctx context.Context, b bundle) error {
	rows, err := b.pool.Query(ctx, `SELECT m.ordering_key, m.seq FROM commits c JOIN outboxd.outbox_messages m ON m.id = c.id ORDER BY c.n`)
	if err != nil {
		return err
	}
	last := map[string]int64{}
	var (
		key string
		seq int64
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &seq}, func() error {
		if seq <= last[key] {
			return fmt.Errorf("key %s: seq %d committed after %d while both exist", key, seq, last[key])
		}
		last[key] = seq
		return nil
	})
	return err
}
