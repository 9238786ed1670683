package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// runPurge measures receipt latency at 16 connections with and without the
// maintenance purge deleting expired inbox keys at the same time.
func runPurge(url string, keys int, d time.Duration) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns=20")
	if err != nil {
		return err
	}
	defer pool.Close()
	in, _ := inbox.New(nil)
	ob, _ := outbox.New(nil)
	disp, err := worker.New(pool, &worker.Config{
		Destinations: map[string]dispatch.Destination{"none": &dispatch.Memory{}},
		DisableRiver: true,
	})
	if err != nil {
		return err
	}
	fmt.Printf("Inserting %d expired inbox keys...\n", keys)
	if _, err := pool.Exec(ctx, `INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload, received_at)
		SELECT 'expired', 'evt_' || g, now() - interval '1 day', convert_to('{"id":"evt","type":"lead.created"}', 'UTF8'), now() - interval '5 days'
		FROM generate_series(1, $1) g`, keys); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE outboxd.inbox_events`); err != nil {
		return err
	}

	base, err := receiptLatencies(ctx, pool, in, ob, 16, d, nil)
	if err != nil {
		return err
	}
	var purged atomic.Int64
	purgeStart := time.Now()
	var purgeEnd time.Time
	with, err := receiptLatencies(ctx, pool, in, ob, 16, d, func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := disp.Purge(ctx, time.Second)
			if err != nil {
				fmt.Println("purge:", err)
				return
			}
			purged.Add(res.InboxKeys)
			if res.InboxKeys == 0 {
				if purgeEnd.IsZero() {
					purgeEnd = time.Now()
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	if err != nil {
		return err
	}
	if purgeEnd.IsZero() {
		purgeEnd = time.Now()
	}
	fmt.Printf("\nReceipts at 16 connections, %s each; purge batches of 1000 (FOR UPDATE SKIP LOCKED)\n\n", d)
	fmt.Println("| run | receipts/s | p50 | p99 |")
	fmt.Println("|---|---|---|---|")
	for _, r := range []struct {
		name string
		l    latencies
	}{{"without purge", base}, {"while purging", with}} {
		fmt.Printf("| %s | %.0f | %s | %s |\n", r.name, r.l.rate, msf(r.l.p50), msf(r.l.p99))
	}
	fmt.Printf("\np99 while purging / p99 without: %.2fx. Purged %d expired keys in %s (%.0f keys/s) during the run.\n",
		float64(with.p99)/float64(base.p99), purged.Load(), purgeEnd.Sub(purgeStart).Round(time.Millisecond),
		float64(purged.Load())/purgeEnd.Sub(purgeStart).Seconds())
	return nil
}

type latencies struct {
	rate     float64
	p50, p99 time.Duration
}

func msf(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// receiptLatencies runs receipts on conns goroutines for d, with background
// running beside them until the end, and returns the latency distribution.
func receiptLatencies(ctx context.Context, pool *pgxpool.Pool, in *inbox.Inbox, ob *outbox.Outbox, conns int, d time.Duration, background func(stop <-chan struct{})) (latencies, error) {
	stop := make(chan struct{})
	var bg sync.WaitGroup
	if background != nil {
		bg.Add(1)
		go func() { defer bg.Done(); background(stop) }()
	}
	var (
		mu       sync.Mutex
		all      []time.Duration
		wg       sync.WaitGroup
		firstErr error
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := receipt(ctx, pool, in, ob); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	bg.Wait()
	if firstErr != nil {
		return latencies{}, firstErr
	}
	slices.Sort(all)
	return latencies{
		rate: float64(len(all)) / elapsed.Seconds(),
		p50:  all[len(all)/2],
		p99:  all[len(all)*99/100],
	}, nil
}
