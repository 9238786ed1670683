// Command console measures the operator console's search endpoints over a
// large inbox: p50 and p99 of each search through the HTTP API (auth, query,
// JSON), beside two baselines measured in the same run: the cheapest
// endpoint (GET /api/session, no database) and an event fetched by its
// primary key. Each is measured twice: first on the tables as filled, never
// analyzed (autovacuum off on them: the planner has no statistics, as after
// a bulk load), then after VACUUM ANALYZE. It prints a Markdown table.
//
//	go run ./internal/bench/console [-database-url URL] [-events 1000000] [-samples 300]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/internal/pgtest"
)

func main() {
	adminURL := pgtest.BenchDatabaseURL(flag.CommandLine, "server to benchmark (a database outboxd_bench_console is created on it)")
	events := flag.Int("events", 1_000_000, "inbox events generated")
	samples := flag.Int("samples", 300, "requests per search")
	flag.Parse()
	if err := run(adminURL(), *events, *samples); err != nil {
		fmt.Fprintln(os.Stderr, "bench-console:", err)
		os.Exit(1)
	}
}

// contacts is how many distinct people the events are about: each email
// has about events/contacts events.
func contacts(events int) int { return max(events/5, 1) }

// fill generates events (a tenth of them from each of 10 sources, over 30
// days, 2% rejected) with refs email, contact_id and phone, and a message
// for every fifth event.
func fill(ctx context.Context, pool *pgxpool.Pool, events int) error {
	_, err := pool.Exec(ctx, `
INSERT INTO outboxd.inbox_events (source, event_id, event_type, received_at, last_seen_at, expires_at, status, payload, refs)
SELECT 'src' || (i % 10), 'evt_' || i, 'lead.created',
       now() - (i::float8 / $1) * interval '30 days', now(), now() + interval '4 days',
       CASE WHEN i % 50 = 0 THEN 'rejected' ELSE 'processed' END,
       convert_to('{"id":"evt_' || i || '"}', 'UTF8'),
       jsonb_build_object('email', 'user' || (i % $2) || '@example.com', 'contact_id', (i % $2)::text,
                          'phone', '+1555' || lpad((i % $2)::text, 7, '0'))
FROM generate_series(1, $1) i`, events, contacts(events))
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `
INSERT INTO outboxd.outbox_messages (id, destination, type, payload, idempotency_key, status, created_at, caused_by_source, caused_by_event_id)
SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'email-api' ELSE 'sales-chat' END, 'email.welcome', '{}',
       'key_' || i, CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'delivered' END,
       now() - (i::float8 / $1) * interval '30 days', 'src' || (i % 10), 'evt_' || i
FROM generate_series(5, $1, 5) i`, events)
	if err != nil {
		return err
	}
	return nil
}

var benchTables = []string{"inbox_events", "outbox_messages", "outbox_attempts"}

type search struct {
	name string
	path func(r *rand.Rand) string
}

func run(adminURL string, events, samples int) error {
	ctx := context.Background()
	dbURL, err := pgtest.Recreate(ctx, adminURL, "outboxd_bench_console")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	began := time.Now()
	for _, t := range benchTables { // no statistics until the second round
		if _, err := pool.Exec(ctx, `ALTER TABLE outboxd.`+t+` SET (autovacuum_enabled = false)`); err != nil {
			return err
		}
	}
	if err := fill(ctx, pool, events); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	fmt.Printf("Console search over %d inbox events and %d outbox messages (filled in %s); %d requests per search, one at a time, through the HTTP API; %d CPUs, %s\n\n",
		events, events/5, time.Since(began).Round(time.Second), samples, runtime.NumCPU(), runtime.Version())

	const token = "bench-token-of-the-console"
	c, err := console.New(pool, &console.Config{Users: []console.User{{Name: "bench", Role: console.Viewer, Token: token}}})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	client := srv.Client()
	get := func(path string) (time.Duration, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: %d", path, resp.StatusCode)
		}
		return time.Since(t0), nil
	}
	person := func(r *rand.Rand) int { return r.IntN(contacts(events)) }
	event := func(r *rand.Rand) int { return 1 + r.IntN(events) }
	searches := []search{
		{"baseline: GET /api/session (no database)", func(*rand.Rand) string { return "/api/session" }},
		{"baseline: an event by its primary key", func(r *rand.Rand) string { i := event(r); return fmt.Sprintf("/api/events/src%d/evt_%d", i%10, i) }},
		{"events: q=<email> (any reference's value)", func(r *rand.Rand) string {
			return "/api/events?q=" + url.QueryEscape(fmt.Sprintf("user%d@example.com", person(r)))
		}},
		{"events: q=phone=<phone> (one reference)", func(r *rand.Rand) string {
			return "/api/events?q=" + url.QueryEscape(fmt.Sprintf("phone=+1555%07d", person(r)))
		}},
		{"events: q=<event id> (no source)", func(r *rand.Rand) string { return fmt.Sprintf("/api/events?q=evt_%d", event(r)) }},
		{"events: source + status=rejected + a 1 h window", func(r *rand.Rand) string {
			since := time.Duration(1+r.IntN(29*24)) * time.Hour
			return fmt.Sprintf("/api/events?source=src%d&status=rejected&since=%s&until=%s", r.IntN(10), since, since-time.Hour)
		}},
		{"events: newest 100, no filter", func(*rand.Rand) string { return "/api/events" }},
		{"messages: idempotency_key=<key>", func(r *rand.Rand) string {
			return fmt.Sprintf("/api/messages?idempotency_key=key_%d", 5*(1+r.IntN(events/5)))
		}},
		{"messages: destination + status=dead", func(r *rand.Rand) string {
			return "/api/messages?status=dead&destination=" + []string{"email-api", "sales-chat"}[r.IntN(2)]
		}},
		{"destinations page data", func(*rand.Rand) string { return "/api/destinations" }},
		{"event page data: an event, its failures and messages", func(r *rand.Rand) string {
			i := 5 * (1 + r.IntN(events/5))
			return fmt.Sprintf("/api/events/src%d/evt_%d", i%10, i)
		}},
	}
	measure := func(s search, n int) ([]time.Duration, error) {
		r := rand.New(rand.NewPCG(1, uint64(len(s.name))))
		for range 20 { // warm the caches and the connection pool
			if _, err := get(s.path(r)); err != nil {
				return nil, err
			}
		}
		out := make([]time.Duration, 0, n)
		for range n {
			d, err := get(s.path(r))
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		slices.Sort(out)
		return out, nil
	}
	round := func() ([][2]time.Duration, error) {
		out := make([][2]time.Duration, len(searches))
		for i, s := range searches {
			ds, err := measure(s, samples)
			if err != nil {
				return nil, err
			}
			out[i] = [2]time.Duration{ds[len(ds)/2], ds[len(ds)*99/100]}
		}
		return out, nil
	}
	noStats, err := round()
	if err != nil {
		return err
	}
	for _, t := range benchTables {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE outboxd.`+t); err != nil {
			return err
		}
	}
	analyzed, err := round()
	if err != nil {
		return err
	}
	fmt.Println("| search | never analyzed: p50 | p99 | p50 vs the primary-key fetch | after VACUUM ANALYZE: p50 | p99 | p50 vs the primary-key fetch |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for i, s := range searches {
		a, b := noStats[i], analyzed[i]
		fmt.Printf("| %s | %s | %s | %.1fx | %s | %s | %.1fx |\n", s.name, ms(a[0]), ms(a[1]), float64(a[0])/float64(noStats[1][0]),
			ms(b[0]), ms(b[1]), float64(b[0])/float64(analyzed[1][0]))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
