package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/bench/pgcost"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// figures are one round's measurements. Times in seconds.
type figures struct {
	claimDown, claimSink float64 // mean claim time per destination
	cpuPerSec            float64 // dispatcher backends' CPU seconds per second
	cpuPerMsg            float64 // the same per healthy message delivered
	walPerMsg            float64 // WAL bytes per healthy message (enqueue, delivery and the failing one's retries)
	writesPerMsg         float64 // non-HOT row versions written per healthy message
	entriesPerMsg        float64 // b-tree entries written per healthy message (-1: not counted)
	p50, p99             float64 // healthy destination: commit to first arrival
}

// measure runs a dispatcher serving "down" (503 to every request) and
// "sink" for one round while producers commit messages to "sink" at
// o.rate, and reads what it cost.
func measure(ctx context.Context, s *scenario, o options) (figures, error) {
	var f figures
	healthy, down := sink.Start(), sink.Start()
	defer healthy.Close()
	defer down.Close()
	down.Respond = func(*http.Request, []byte) (int, http.Header) { return http.StatusServiceUnavailable, nil }
	dpool, err := pgxpool.New(ctx, s.url+"&pool_max_conns=16&application_name="+appName)
	if err != nil {
		return f, err
	}
	defer dpool.Close()
	ppool, err := pgxpool.New(ctx, s.url+"&pool_max_conns=16")
	if err != nil {
		return f, err
	}
	defer ppool.Close()

	dests := map[string]dispatch.Destination{}
	for name, sk := range map[string]*sink.Sink{"sink": healthy, "down": down} {
		if dests[name], err = dispatch.NewHTTP(&dispatch.HTTPConfig{URL: sk.URL(), MaxConcurrency: 64}); err != nil {
			return f, err
		}
	}
	reg := prometheus.NewRegistry()
	metrics, err := worker.NewMetrics(reg)
	if err != nil {
		return f, err
	}
	d, err := worker.New(dpool, &worker.Config{Destinations: dests, Metrics: metrics, DisableRiver: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return f, err
	}
	if err := d.Start(ctx); err != nil {
		return f, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = d.Stop(stopCtx)
	}()
	// Commits are announced by a Notifier, as an application at this rate
	// should run it.
	notifier, err := outbox.NewNotifier(ppool, &outbox.NotifierConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return f, err
	}
	if err := notifier.Start(ctx); err != nil {
		return f, err
	}
	defer func() { _ = notifier.Stop(context.Background()) }()
	ob, err := outbox.New(&outbox.Config{Notifier: notifier})
	if err != nil {
		return f, err
	}
	// Warm up: every lane acquired, the first sweeps done.
	time.Sleep(3 * time.Second)

	before, err := read(ctx, ppool)
	if err != nil {
		return f, err
	}
	claimsBefore, err := claimTimes(reg)
	if err != nil {
		return f, err
	}
	start := time.Now()
	// The failing destination keeps receiving messages, as in a real
	// outage: each to a key of its backlog, behind that key's head.
	downErr := make(chan error, 1)
	keys := max(1, min(o.keys, s.pending)) // load's keys
	go func() {
		_, err := produce(ctx, ppool, ob, "down", o.downRate, o.duration, func(i int) string { return "cust-" + strconv.Itoa(i*7919%keys) })
		downErr <- err
	}()
	committed, err := produce(ctx, ppool, ob, "sink", o.rate, o.duration, func(i int) string { return "h-" + strconv.Itoa(i%100) })
	if err != nil {
		return f, err
	}
	if err := <-downErr; err != nil {
		return f, err
	}
	// Until every healthy message arrived (or 30 s).
	for deadline := time.Now().Add(30 * time.Second); arrived(healthy, committed) < len(committed) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start).Seconds()
	after, err := read(ctx, ppool)
	if err != nil {
		return f, err
	}
	claimsAfter, err := claimTimes(reg)
	if err != nil {
		return f, err
	}

	n := float64(len(committed))
	cpu := 0.0
	for pid, t := range after.cpu {
		cpu += t - before.cpu[pid] // a connection opened since starts from 0
	}
	f.cpuPerSec, f.cpuPerMsg = cpu/elapsed, cpu/n
	f.walPerMsg = (after.wal - before.wal) / n
	f.writesPerMsg = (after.writes - before.writes) / n
	f.entriesPerMsg = pgcost.EntriesPer(btreeEntries(ctx, ppool, before, after), n)
	f.claimDown = claimsAfter["down"].mean(claimsBefore["down"])
	f.claimSink = claimsAfter["sink"].mean(claimsBefore["sink"])

	var lat []float64
	first := map[string]time.Time{}
	for _, r := range healthy.Requests() {
		if _, seen := first[r.IdempotencyKey]; !seen {
			first[r.IdempotencyKey] = r.At
		}
	}
	for k, at := range committed {
		if got, ok := first[k]; ok {
			lat = append(lat, got.Sub(at).Seconds())
		}
	}
	if len(lat) < len(committed) {
		return f, fmt.Errorf("%d of %d healthy messages arrived", len(lat), len(committed))
	}
	slices.Sort(lat)
	f.p50, f.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return f, nil
}

// produce commits one keyed message to dest per 1/rate for the round's
// duration and returns each one's commit time by idempotency key.
func produce(ctx context.Context, pool *pgxpool.Pool, ob *outbox.Outbox, dest string, rate float64, duration time.Duration, key func(int) string) (map[string]time.Time, error) {
	var (
		mu        sync.Mutex
		committed = map[string]time.Time{}
		wg        sync.WaitGroup
		firstErr  error
	)
	if rate <= 0 {
		return committed, nil
	}
	total := int(rate * duration.Seconds())
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := 0; i < total; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := ob.Enqueue(ctx, pool, outbox.Message{Destination: dest, Type: "deal.won",
				OrderingKey: key(i), Payload: fmt.Appendf(nil, `{"n":%d}`, i)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = err
				return
			}
			committed[e.IdempotencyKey] = time.Now()
		}()
	}
	wg.Wait()
	return committed, firstErr
}

func arrived(s *sink.Sink, committed map[string]time.Time) int {
	n := 0
	seen := map[string]bool{}
	for _, r := range s.Requests() {
		if _, ok := committed[r.IdempotencyKey]; ok && !seen[r.IdempotencyKey] {
			seen[r.IdempotencyKey] = true
			n++
		}
	}
	return n
}
