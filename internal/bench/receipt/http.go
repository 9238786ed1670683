package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/bench/pgbench"
	"github.com/outboxd/outboxd/outbox"
)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// runHTTP measures signed webhook receipt over HTTP on loopback (verify,
// dedupe, one business row, one outbox enqueue) with conns clients, new
// events and duplicates separately, beside pgbench on the same SQL.
func runHTTP(url, script string, conns int, d time.Duration, rounds int) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, fmt.Sprintf("%s&pool_max_conns=%d", url, conns))
	if err != nil {
		return err
	}
	defer pool.Close()
	in, _ := inbox.New(nil)
	ob, _ := outbox.New(nil)
	v, _ := verify.StandardWebhooks(benchSecret)
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{
		Name: "bench", Verifier: v,
		Handle: func(ctx context.Context, tx pgx.Tx, dl *inbox.Delivery) error {
			if _, err := tx.Exec(ctx, `INSERT INTO bench_leads (email, name) VALUES ($1, $2)`, "ada@example.com", "Ada Lovelace"); err != nil {
				return err
			}
			_, err := ob.Enqueue(ctx, tx, outbox.Message{
				Destination: "email-api", Type: "email.welcome",
				OrderingKey: "contact-" + strconv.Itoa(1+rand.IntN(10000)),
				Payload:     []byte(`{"to":"ada@example.com","template":"welcome"}`),
				CausedBy:    &outbox.EventRef{Source: dl.Source, EventID: dl.ID},
			})
			return err
		},
	}}})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	signer, _ := dispatch.NewSigner(benchSecret)

	var (
		mu   sync.Mutex
		seen []string
	)
	post := func(id string) error {
		now := time.Now()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/bench", bytes.NewReader(payload))
		req.Header.Set("Webhook-Id", id)
		req.Header.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("Webhook-Signature", signer.Sign(id, now, payload))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	measure := func(next func() string) (float64, error) {
		var n atomic.Int64
		var firstErr atomic.Value
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					if err := post(next()); err != nil {
						firstErr.Store(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, err
		}
		return float64(n.Load()) / time.Since(start).Seconds(), nil
	}
	newID := func() string {
		id := "evt_" + strconv.FormatInt(rand.Int64(), 10)
		mu.Lock()
		if len(seen) < 200000 {
			seen = append(seen, id)
		}
		mu.Unlock()
		return id
	}
	dupID := func() string {
		mu.Lock()
		defer mu.Unlock()
		return seen[rand.IntN(len(seen))]
	}
	var news, dups, pgb []float64
	for r := 0; r < rounds; r++ {
		tps, err := measure(newID)
		if err != nil {
			return fmt.Errorf("new events: %w", err)
		}
		news = append(news, tps)
		if tps, err = measure(dupID); err != nil {
			return fmt.Errorf("duplicates: %w", err)
		}
		dups = append(dups, tps)
		if tps, err = pgbench.Run(url, script, conns, d); err != nil {
			return err
		}
		pgb = append(pgb, tps)
	}
	n, du, p := pgbench.Median(news), pgbench.Median(dups), pgbench.Median(pgb)
	fmt.Printf("Signed webhook receipt over HTTP (Standard Webhooks, loopback), %d clients, %s x %d alternating rounds, medians\n\n", conns, d, rounds)
	fmt.Println("| what | per second | vs pgbench (same SQL, new events) |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| pgbench, the three statements | %.0f | 100%% |\n", p)
	fmt.Printf("| new events over HTTP | %.0f | %.0f%% |\n", n, 100*n/p)
	fmt.Printf("| duplicates over HTTP | %.0f | %.0f%% (%.1fx new events) |\n", du, 100*du/p, du/n)
	return nil
}
