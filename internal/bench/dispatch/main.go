// Command dispatch measures outboxd's dispatcher against the simplest River
// design (one River job per message), in one run on one machine, and prints
// a Markdown table, beside the relay people write by hand (a SKIP LOCKED
// poller):
//
//   - the sink ceiling: POSTs/s a keep-alive Go client at concurrency 64
//     gets from the local sink, no database involved;
//
//   - drain throughput: 20,000 messages, each committed in its own
//     transaction by 16 producers before the dispatcher starts, delivered to
//     the sink;
//
//   - commit-to-first-receipt latency at a steady 300 messages/s for 20 s;
//
//   - the same for outboxd while another destination times out on every
//     request: a slow destination may only slow itself.
//
//     go run ./internal/bench/dispatch [-database-url URL] [-messages 20000] [-rate 300] [-duration 20s] [-rounds 3]
//     [-settle 11s] [-latency-timeline FILE]
//
// The latency measurement starts -settle after the drain ends: after a
// large drain, the longer the machine idled, the slower its first second
// (docs/benchmarks.md, "Latency after a drain and a pause").
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/bench/pgcost"
	"github.com/outboxd/outboxd/internal/pgtest"
)

type options struct {
	messages, producers int
	rounds              int
	round               int // the round being measured, from 0 (-latency-timeline's headers)
	drainProfile        string
	designs             map[string]bool // by short name; empty: all
	rate                float64
	duration            time.Duration
	// settle is the wait between the drain's end and the latency
	// measurement, while the drain's statistics reach the views.
	settle time.Duration
	// timeline, when set, gets every latency message's commit time and
	// latency (-latency-timeline).
	timeline io.Writer
}

func main() {
	adminURL := pgtest.BenchDatabaseURL(flag.CommandLine, "server to benchmark (a database outboxd_bench_dispatch is created on it)")
	var o options
	flag.IntVar(&o.messages, "messages", 20000, "messages in the drain measurement")
	flag.IntVar(&o.producers, "producers", 16, "producers committing the drain messages")
	flag.Float64Var(&o.rate, "rate", 300, "offered load of the latency measurement, messages/s")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of the latency measurement")
	flag.IntVar(&o.rounds, "rounds", 1, "alternating rounds over the designs (medians are printed)")
	flag.StringVar(&o.drainProfile, "drain-profile", "", "write a CPU profile of this process (client, dispatcher and sink) during the first drain measured (outboxd's, unless -designs leaves it out) to this file")
	flag.DurationVar(&o.settle, "settle", 11*time.Second, "wait between the drain's end and the latency measurement (below 11 s the drain's row versions and fsyncs miss what idle backends had not yet reported)")
	timeline := flag.String("latency-timeline", "", "write each latency message's commit time (ms since the measurement began) and latency (ms) to this file, a block per design and round")
	designsFlag := flag.String("designs", "", "comma-separated subset of the designs to measure: outboxd, apart (outboxd's dispatcher on a pool of its own), slow (outboxd beside a timing-out destination), poller, river (default: all but apart; the summary lines need the designs they compare)")
	flag.Parse()
	o.designs = map[string]bool{}
	for _, n := range strings.Split(*designsFlag, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if _, ok := designs[n]; !ok {
			fmt.Fprintf(os.Stderr, "bench-dispatch: -designs: unknown design %q (known: %s)\n", n, strings.Join(designOrder, ", "))
			os.Exit(2)
		}
		o.designs[n] = true
	}
	if *pollerLoops < 1 || *httpConcurrency < 0 || *batchSize < 0 || o.messages < 1 || o.rounds < 1 || o.producers < 1 || !(o.rate > 0 && o.rate <= 1e6) || o.duration <= 0 || o.rate*o.duration.Seconds() < 1 || o.settle < 0 {
		fmt.Fprintln(os.Stderr, "bench-dispatch: -poller-loops, -messages, -producers and -rounds must be at least 1, -rate above 0 (at most 1e6) and -duration above 0, long enough for one message at -rate; -http-concurrency, -batch and -settle not negative (0: the default, for the first two)")
		os.Exit(2)
	}
	var timelineFile *os.File
	if *timeline != "" {
		f, err := os.Create(*timeline)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-dispatch: -latency-timeline:", err)
			os.Exit(1)
		}
		timelineFile, o.timeline = f, f
	}
	err := run(adminURL(), o)
	if timelineFile != nil {
		if cerr := timelineFile.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("-latency-timeline: %w", cerr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-dispatch:", err)
		os.Exit(1)
	}
}

// orDefault prints a flag whose zero means "outboxd's default".
func orDefault(v int, def string) string {
	if v == 0 {
		return def + " (default)"
	}
	return strconv.Itoa(v)
}

// system is one dispatch design under test.
type system interface {
	name() string
	// enqueue commits one message in its own transaction and returns its
	// idempotency key.
	enqueue(ctx context.Context, i int) (string, error)
	start(ctx context.Context) error
	stop(ctx context.Context) error
}

type figures struct {
	drainPerSec float64
	drainCost   pgcost.Reading // the drain's, for the whole of it
	// drainClientCPU is this process's CPU seconds during the drain: the
	// design's dispatcher, its HTTP client and the sink.
	drainClientCPU float64
	p50, p95, p99  time.Duration
	lost, repeats  int
	// latencyServerCPU and latencyClientCPU are CPU seconds per message
	// of the latency measurement: PostgreSQL's (-1: not read) and this
	// process's.
	latencyServerCPU, latencyClientCPU float64
}

func run(adminURL string, o options) error {
	ctx := context.Background()
	s := newSink()
	defer s.srv.Close()

	ceiling := sinkCeiling(s, 64, 5*time.Second)
	fmt.Fprintf(os.Stderr, "sink ceiling: %.0f POST/s\n", ceiling)

	// Rounds alternate over the designs, so that the machine's noise
	// spreads over all of them; each figure is the median of its rounds.
	rounds := map[string][]figures{}
	var order []string
	for r := 0; r < o.rounds; r++ {
		for _, short := range designOrder {
			skip := !o.designs[short]
			if len(o.designs) == 0 { // all but apart, which only -designs asks for
				skip = short == "apart"
			}
			if skip {
				continue
			}
			mk := designs[short]
			o.round = r
			f, name, err := measureFresh(ctx, adminURL, mk, s, o)
			if err != nil {
				return err
			}
			if r == 0 {
				order = append(order, name)
			}
			rounds[name] = append(rounds[name], f)
		}
	}
	results := map[string]figures{}
	for name, fs := range rounds {
		results[name] = medianFigures(fs)
	}

	fmt.Printf("Dispatch benchmark: %d CPUs, %s, %s, medians of %d alternating rounds; outboxd's HTTP concurrency %s, batch %s; the poller's loops %d\n\n",
		runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"), o.rounds, orDefault(*httpConcurrency, "16"), orDefault(*batchSize, "200"), *pollerLoops)
	fmt.Printf("Sink ceiling (keep-alive Go client, concurrency 64, no database): %.0f POST/s\n\n", ceiling)
	fmt.Printf("| design | drain msg/s (%d msgs, %d producers) | %% of sink ceiling | latency p50 | p95 | p99 (at %.0f msg/s) | lost | repeats | drain: %s | client CPU / msg | at %.0f msg/s: server / client CPU per msg |\n", o.messages, o.producers, o.rate, pgcost.Header, o.rate)
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, n := range order {
		f := results[n]
		server := "n/a"
		if f.latencyServerCPU >= 0 {
			server = fmt.Sprintf("%.0f µs", f.latencyServerCPU*1e6)
		}
		fmt.Printf("| %s | %.0f | %.0f%% | %s | %s | %s | %d | %d | %s | %.0f µs | %s / %.0f µs |\n", n, f.drainPerSec, 100*f.drainPerSec/ceiling,
			ms(f.p50), ms(f.p95), ms(f.p99), f.lost, f.repeats, f.drainCost.PerMessage(float64(o.messages)), f.drainClientCPU*1e6/float64(o.messages),
			server, f.latencyClientCPU*1e6)
	}
	a, haveA := results[outboxdName]
	fmt.Println()
	if b, ok := results[riverName]; ok && haveA {
		fmt.Printf("%s drains %.1fx as fast as %s; p50 latency %.1fx lower.\n", outboxdName, a.drainPerSec/b.drainPerSec, riverName, float64(b.p50)/float64(max(a.p50, 1)))
	}
	if poller, ok := results[pollerName()]; ok && haveA {
		fmt.Printf("%s drains at %.0f%% of %s (goal: at least 100%%); p50 latency %.2fx, p99 %.2fx of the poller's.\n", outboxdName,
			100*a.drainPerSec/poller.drainPerSec, pollerName(), float64(a.p50)/float64(max(poller.p50, 1)), float64(a.p99)/float64(max(poller.p99, 1)))
	}
	if slow, ok := results[besideSlowName]; ok && haveA {
		fmt.Printf("Beside a destination that times out on every request, the healthy one's p50 is %.2fx and p99 %.2fx its value alone (goal: p99 within 2x).\n",
			float64(slow.p50)/float64(max(a.p50, 1)), float64(slow.p99)/float64(max(a.p99, 1)))
	}
	return nil
}

// measureFresh measures one design in a database of its own.
func measureFresh(ctx context.Context, adminURL string, mk func(*pgxpool.Pool, string) (system, error), s *sink, o options) (figures, string, error) {
	url, err := pgtest.Recreate(ctx, adminURL, "outboxd_bench_dispatch")
	if err != nil {
		return figures{}, "", err
	}
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns=40")
	if err != nil {
		return figures{}, "", err
	}
	defer pool.Close()
	sys, err := mk(pool, s.srv.URL)
	if err != nil {
		return figures{}, "", err
	}
	read := func() (pgcost.Reading, error) {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return pgcost.Reading{}, err
		}
		defer c.Release()
		return pgcost.Read(ctx, c.Conn())
	}
	entries := func(from, to pgcost.Reading) float64 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return -1
		}
		defer c.Release()
		return pgcost.Entries(ctx, c.Conn(), from, to)
	}
	f, err := measure(ctx, sys, s, o, read, entries)
	if err != nil {
		return f, "", fmt.Errorf("%s: %w", sys.name(), err)
	}
	return f, sys.name(), nil
}

// medianFigures takes each figure's median over rounds; losses and
// repeats are summed, since any is a failure.
func medianFigures(fs []figures) figures {
	var out figures
	drain := make([]float64, len(fs))
	var p50, p95, p99 []time.Duration
	var wal, writes, cpu, client, entries, lServer, lClient []float64
	for i, f := range fs {
		lServer, lClient = append(lServer, f.latencyServerCPU), append(lClient, f.latencyClientCPU)
		drain[i] = f.drainPerSec
		wal, writes, cpu = append(wal, f.drainCost.WALBytes), append(writes, f.drainCost.Writes), append(cpu, f.drainCost.CPU)
		entries = append(entries, f.drainCost.Entries)
		client = append(client, f.drainClientCPU)
		p50, p95, p99 = append(p50, f.p50), append(p95, f.p95), append(p99, f.p99)
		out.lost += f.lost
		out.repeats += f.repeats
	}
	slices.Sort(drain)
	for _, xs := range [][]time.Duration{p50, p95, p99} {
		slices.Sort(xs)
	}
	mid := len(fs) / 2
	out.drainPerSec, out.p50, out.p95, out.p99 = drain[mid], p50[mid], p95[mid], p99[mid]
	for _, xs := range [][]float64{wal, writes, cpu, client, entries, lServer, lClient} {
		slices.Sort(xs)
	}
	out.drainCost = pgcost.Reading{WALBytes: wal[mid], Writes: writes[mid], CPU: cpu[mid], Entries: entries[mid]}
	out.drainClientCPU = client[mid]
	out.latencyServerCPU, out.latencyClientCPU = lServer[mid], lClient[mid]
	if slices.Contains(lServer, -1) {
		out.latencyServerCPU = -1 // a round not read
	}
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// sinkCeiling measures the sink alone.
func sinkCeiling(s *sink, conc int, d time.Duration) float64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := client.Post(s.srv.URL, "application/json", bytes.NewReader([]byte(`{"n":1}`)))
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	s.reset()
	return float64(n.Load()) / time.Since(start).Seconds()
}

func measure(ctx context.Context, sys system, s *sink, o options, read func() (pgcost.Reading, error), entries func(from, to pgcost.Reading) float64) (figures, error) {
	var f figures
	s.reset()
	// Drain: pre-enqueue, then start and time until every key arrived.
	keys := make([]string, o.messages)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		prodErr error
	)
	for p := 0; p < o.producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < o.messages; i += o.producers {
				k, err := sys.enqueue(ctx, i)
				if err != nil {
					errOnce.Do(func() { prodErr = err })
					return
				}
				keys[i] = k
			}
		}()
	}
	wg.Wait()
	if prodErr != nil {
		return f, prodErr
	}
	fmt.Fprintf(os.Stderr, "%s: %d messages enqueued; draining\n", sys.name(), o.messages)
	time.Sleep(11 * time.Second) // the producers' statistics reach the views (see below)
	before, err := read()
	if err != nil {
		return f, err
	}
	stopProfile, err := startProfile(o, sys)
	if err != nil {
		return f, err
	}
	cpuBefore := pgcost.ClientCPU()
	start := time.Now()
	if err := sys.start(ctx); err != nil {
		return f, err
	}
	var peak int // goroutines: the design's (its parked ones cost stacks), sink's and harness's
	if err := waitFor(func() bool { peak = max(peak, runtime.NumGoroutine()); return s.distinct() >= o.messages }, 5*time.Minute); err != nil {
		return f, fmt.Errorf("drain: %w (%d of %d arrived)", err, s.distinct(), o.messages)
	}
	f.drainPerSec = float64(o.messages) / time.Since(start).Seconds()
	f.drainClientCPU = pgcost.ClientCPU() - cpuBefore
	stopProfile()
	// CPU and WAL position now; the statistics (row versions, fsyncs) once
	// the backends have reported them: a busy one within a second, but an
	// idle one (PostgreSQL 15) 10 s after its last transaction. Reading
	// them 1.5 s after the drain missed a fifth of the row versions.
	atEnd, err := read()
	if err != nil {
		return f, err
	}
	time.Sleep(o.settle) // also lets stragglers show as repeats
	later, err := read()
	if err != nil {
		return f, err
	}
	f.drainCost = atEnd.Sub(before)
	f.drainCost.Entries = entries(before, atEnd)
	f.drainCost.Writes, f.drainCost.WALSyncs = later.Writes-before.Writes, later.WALSyncs-before.WALSyncs
	f.repeats = int(s.requests.Load()) - s.distinct()
	fmt.Fprintf(os.Stderr, "%s: drained at %.0f msg/s (at most %d goroutines in this process, sampled)\n", sys.name(), f.drainPerSec, peak)

	// Latency at a steady offered load, with the system running.
	s.reset()
	lBefore, err := read()
	if err != nil {
		return f, err
	}
	lClient := pgcost.ClientCPU()
	interval := time.Duration(float64(time.Second) / o.rate)
	total := int(o.rate * o.duration.Seconds())
	committed := make([]time.Time, total)
	lkeys := make([]string, total)
	var lwg sync.WaitGroup
	began := time.Now()
	tick := time.NewTicker(interval)
	for i := 0; i < total; i++ {
		<-tick.C
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			k, err := sys.enqueue(ctx, o.messages+i)
			if err != nil {
				errOnce.Do(func() { prodErr = err })
				return
			}
			committed[i], lkeys[i] = time.Now(), k
		}()
	}
	tick.Stop()
	lwg.Wait()
	if prodErr != nil {
		return f, prodErr
	}
	// Only this phase's messages count: a drain's straggler may arrive
	// after the reset (a short -settle).
	arrived := 0
	_ = waitFor(func() bool {
		for arrived < total {
			if _, ok := s.firstAt(lkeys[arrived]); !ok {
				return false
			}
			arrived++
		}
		return true
	}, time.Minute)
	f.latencyClientCPU = (pgcost.ClientCPU() - lClient) / float64(total)
	lAfter, err := read()
	if err != nil {
		return f, err
	}
	f.latencyServerCPU = -1
	if c := lAfter.Sub(lBefore).CPU; c >= 0 {
		f.latencyServerCPU = c / float64(total)
	}
	var lat []time.Duration
	for i, k := range lkeys {
		at, ok := s.firstAt(k)
		if !ok {
			f.lost++
			continue
		}
		lat = append(lat, max(at.Sub(committed[i]), 0))
	}
	if o.timeline != nil {
		writeTimeline(o.timeline, fmt.Sprintf("%s, round %d", sys.name(), o.round+1), began, committed, lkeys, s)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	f.p50, f.p95, f.p99 = pct(0.50), pct(0.95), pct(0.99)
	time.Sleep(500 * time.Millisecond)
	f.repeats += int(s.requests.Load()) - s.distinct()
	fmt.Fprintf(os.Stderr, "%s: latency p50 %s p99 %s\n", sys.name(), ms(f.p50), ms(f.p99))
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return f, sys.stop(stopCtx)
}

// writeTimeline writes one latency measurement's messages, one line each:
// its index, its commit in ms since the measurement began (its first
// tick: enqueues run concurrently, so not in index order), and its
// latency in ms ("lost" if it never arrived).
func writeTimeline(w io.Writer, name string, began time.Time, committed []time.Time, keys []string, s *sink) {
	fmt.Fprintf(w, "# %s, began at %s\n", name, began.UTC().Format(time.RFC3339Nano))
	for i, k := range keys {
		at, ok := s.firstAt(k)
		if !ok {
			fmt.Fprintf(w, "%d - lost\n", i) // never committed, or not delivered
			continue
		}
		fmt.Fprintf(w, "%d %.3f %.3f\n", i, ms64(committed[i].Sub(began)), ms64(max(at.Sub(committed[i]), 0)))
	}
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var profiled bool // the -drain-profile was taken

// startProfile starts the -drain-profile CPU profile for the run's first
// drain (outboxd's, unless -designs leaves it out), and returns what stops
// it.
func startProfile(o options, sys system) (func(), error) {
	if o.drainProfile == "" || profiled {
		return func() {}, nil
	}
	profiled = true
	f, err := os.Create(o.drainProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func waitFor(cond func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}
