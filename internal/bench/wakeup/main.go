// Command wakeup splits outboxd's commit-to-delivery latency in two: from
// COMMIT to the Notifier's announcement (its wait, its question and the
// NOTIFY), and from the announcement to the first request at the sink (the
// dispatcher's wake-up, its claim and the POST). Messages are committed at
// a steady rate, each in a transaction of its own (BEGIN, Enqueue, COMMIT)
// or, with -autocommit, as Enqueue's statement on the pool; a LISTEN
// connection of the benchmark's own timestamps the announcements, and each
// message is matched with the first one after its commit that names its
// lane. With -hold, each transaction waits a random time up to that long
// between Enqueue and COMMIT: a slow commit (a WAL flush stall, the
// application's own work after the enqueue), which the Notifier's
// questions find open. With -left-open, one more transaction enqueues
// first and stays open for the whole run (a batch job, a session idle in
// a transaction), so that the Notifier backs off for it meanwhile. With
// -slow-commit, each COMMIT itself takes a random time up to that long (a
// deferred trigger sleeps in it: a WAL flush that a checkpoint or a busy
// disk stalls), its session active in the COMMIT. The
// first -warmup of messages (at the same rate)
// is not counted: the first requests open the HTTP connections to the sink
// and the pool's connections for the producers, which put most of a cold
// run's slowest messages in its first second.
//
//	go run ./internal/bench/wakeup [-database-url URL] [-rate 300] [-duration 10s] [-warmup 2s] [-autocommit | -hold 40ms | -slow-commit 100ms] [-left-open]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/wakeup"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

func main() {
	adminURL := pgtest.BenchDatabaseURL(flag.CommandLine, "server to benchmark (a database outboxd_bench_wakeup is created on it)")
	rate := flag.Float64("rate", 300, "messages committed per second")
	duration := flag.Duration("duration", 10*time.Second, "length of the measurement")
	auto := flag.Bool("autocommit", false, "enqueue with a statement on the pool instead of BEGIN, Enqueue, COMMIT")
	hold := flag.Duration("hold", 0, "each transaction waits a random time up to this long between Enqueue and COMMIT (not with -autocommit)")
	warmup := flag.Duration("warmup", 2*time.Second, "messages sent at the same rate before the measurement, and not counted")
	leftOpen := flag.Bool("left-open", false, "one more transaction enqueues first and stays open for the whole run")
	slowCommit := flag.Duration("slow-commit", 0, "each COMMIT takes a random time up to this long (a deferred trigger sleeps in it; not with -autocommit)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench-wakeup: unexpected arguments %q (flags only)\n", flag.Args())
		os.Exit(2)
	}
	if !(*rate > 0 && *rate <= 10000) || *duration <= 0 || *rate*duration.Seconds() < 1 {
		fmt.Fprintln(os.Stderr, "bench-wakeup: -rate must be above 0 (at most 10000) and -duration above 0, for at least one message")
		os.Exit(2)
	}
	if *hold < 0 || *slowCommit < 0 || ((*hold > 0 || *slowCommit > 0) && *auto) || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench-wakeup: -hold, -slow-commit and -warmup must be 0 or more, and -hold and -slow-commit need a transaction (not -autocommit)")
		os.Exit(2)
	}
	// The pool has 40 connections, shared with the dispatcher and the
	// Notifier: transactions held open beyond about 25 at a time would
	// wait for a connection, and the figures would measure that.
	if open := *rate * (*hold + *slowCommit).Seconds(); open > 25 {
		fmt.Fprintf(os.Stderr, "bench-wakeup: -rate %g with -hold %s and -slow-commit %s keeps up to %.0f transactions open; the benchmark's pool holds about 25 (lower either)\n", *rate, *hold, *slowCommit, open)
		os.Exit(2)
	}
	o := options{rate: *rate, duration: *duration, warmup: *warmup, hold: *hold, slowCommit: *slowCommit, auto: *auto, leftOpen: *leftOpen}
	if err := run(adminURL(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-wakeup:", err)
		os.Exit(1)
	}
}

// announcement is one NOTIFY as the benchmark's listener got it.
type announcement struct {
	at    time.Time
	lanes uint32
}

type options struct {
	rate                               float64
	duration, warmup, hold, slowCommit time.Duration
	auto, leftOpen                     bool
}

func run(adminURL string, o options) error {
	rate, duration, auto, hold := o.rate, o.duration, o.auto, o.hold
	ctx := context.Background()
	url, err := pgtest.Recreate(ctx, adminURL, "outboxd_bench_wakeup")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns=40")
	if err != nil {
		return err
	}
	defer pool.Close()
	if o.slowCommit > 0 {
		if err := slowCommits(ctx, pool, o.slowCommit); err != nil {
			return err
		}
	}

	var mu sync.Mutex
	arrived := map[string]time.Time{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		mu.Lock()
		if k := r.Header.Get("Idempotency-Key"); arrived[k].IsZero() {
			arrived[k] = now
		}
		mu.Unlock()
	}))
	defer sink.Close()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: sink.URL})
	if err != nil {
		return err
	}
	d, err := worker.New(pool, &worker.Config{Destinations: map[string]dispatch.Destination{"sink": dest}, Logger: quiet})
	if err != nil {
		return err
	}
	n, err := outbox.NewNotifier(pool, &outbox.NotifierConfig{Logger: quiet})
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = n.Stop(ctx) }()
	ob, err := outbox.New(&outbox.Config{Notifier: n})
	if err != nil {
		return err
	}

	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = listener.Close(ctx) }()
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{ob.NotifyChannel()}.Sanitize()); err != nil {
		return err
	}
	var heard []announcement // read once listened is closed
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listened := make(chan struct{})
	var listenErr error
	go func() {
		defer close(listened)
		for {
			note, err := listener.WaitForNotification(lctx)
			if err != nil {
				if lctx.Err() == nil {
					listenErr = err // every later message would count as unmatched
				}
				return
			}
			at := time.Now()
			lanes, _ := wakeup.Parse(note.Payload)
			heard = append(heard, announcement{at, lanes})
		}
	}()

	if err := d.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = d.Stop(ctx) }()
	time.Sleep(time.Second) // leases taken, runners idle
	if o.leftOpen {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "sink", Type: "batch.open", Payload: []byte(`{}`)}); err != nil {
			return err
		}
	}

	waitArrived := func(n int) error {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := len(arrived)
			mu.Unlock()
			if got >= n {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d messages arrived within 30 s", got, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	warm := int(rate * o.warmup.Seconds())
	if _, _, _, err := produce(ctx, pool, ob, o, 0, warm); err != nil {
		return err
	}
	if err := waitArrived(warm); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	total := int(rate * duration.Seconds())
	committed, ids, keys, err := produce(ctx, pool, ob, o, warm, total)
	if err != nil {
		return err
	}
	if err := waitArrived(warm + total); err != nil {
		return err
	}
	cancel()
	<-listened
	if listenErr != nil {
		return fmt.Errorf("listening: %w", listenErr)
	}
	mu.Lock()
	firstAt := maps.Clone(arrived)
	mu.Unlock()

	lanes := map[uuid.UUID]int{}
	rows, _ := pool.Query(ctx, `SELECT id, lane FROM outboxd.outbox_messages`)
	var (
		id   uuid.UUID
		lane int
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &lane}, func() error { lanes[id] = lane; return nil }); err != nil {
		return err
	}

	var toAnnounce, toRequest, total2 []time.Duration
	unmatched := 0
	for i := range total {
		lane, ok := lanes[ids[i]]
		if !ok {
			return fmt.Errorf("message %s is not in outbox_messages", ids[i])
		}
		at := firstAt[keys[i]]
		total2 = append(total2, at.Sub(committed[i]))
		j := firstNaming(heard, committed[i], lane)
		if j < 0 || heard[j].at.After(at) {
			unmatched++ // found by a sweep or a wake-up for another message
			continue
		}
		toAnnounce = append(toAnnounce, heard[j].at.Sub(committed[i]))
		toRequest = append(toRequest, at.Sub(heard[j].at))
	}
	how := "BEGIN, Enqueue, COMMIT"
	if auto {
		how = "Enqueue's statement on the pool"
	}
	if hold > 0 {
		how += fmt.Sprintf(" (held open up to %s before COMMIT)", hold)
	}
	if o.slowCommit > 0 {
		how += fmt.Sprintf(" (each COMMIT taking up to %s)", o.slowCommit)
	}
	if o.leftOpen {
		how += ", beside a transaction left open"
	}
	fmt.Printf("Wake-up path: %d messages at %g/s after %d not counted (warm-up), each committed by %s; %d not matched with an announcement of their own\n\n", total, rate, warm, how, unmatched)
	fmt.Println("| span | p10 | p50 | p90 | p99 |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"COMMIT returned -> announcement heard", toAnnounce}, {"announcement heard -> first request at the sink", toRequest}, {"COMMIT returned -> first request at the sink", total2}} {
		if len(r.d) == 0 {
			return errors.New("no message was matched with an announcement")
		}
		slices.Sort(r.d)
		q := func(p float64) string {
			return fmt.Sprintf("%.2f ms", float64(r.d[min(len(r.d)-1, int(p*float64(len(r.d))))])/1e6)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.name, q(0.10), q(0.50), q(0.90), q(0.99))
	}
	return nil
}

// produce commits n messages at o.rate, numbered from first (the holds
// follow the number, so every run holds the same), and returns when each
// one's COMMIT returned, with its id and idempotency key.
func produce(ctx context.Context, pool *pgxpool.Pool, ob *outbox.Outbox, o options, first, n int) ([]time.Time, []uuid.UUID, []string, error) {
	committed := make([]time.Time, n)
	ids := make([]uuid.UUID, n)
	keys := make([]string, n)
	if n == 0 {
		return committed, ids, keys, nil
	}
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		prodErr error
	)
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held time.Duration
			if o.hold > 0 {
				held = time.Duration(rand.New(rand.NewPCG(uint64(first+i), 1)).Int64N(int64(o.hold)))
			}
			e, err := enqueue(ctx, pool, ob, o.auto, held)
			if err != nil {
				errOnce.Do(func() { prodErr = err })
				return
			}
			committed[i], ids[i], keys[i] = time.Now(), e.ID, e.IdempotencyKey
		}()
	}
	tick.Stop()
	wg.Wait()
	return committed, ids, keys, prodErr
}

// enqueue commits one message, in a transaction of its own (held open for
// hold after the Enqueue) or as a statement on the pool.
func enqueue(ctx context.Context, pool *pgxpool.Pool, ob *outbox.Outbox, auto bool, hold time.Duration) (outbox.Enqueued, error) {
	msg := outbox.Message{Destination: "sink", Type: "deal.won", Payload: []byte(`{"deal":1}`)}
	if auto {
		return ob.Enqueue(ctx, pool, msg)
	}
	var e outbox.Enqueued
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		e, err = ob.Enqueue(ctx, tx, msg)
		if err == nil && hold > 0 {
			time.Sleep(hold)
		}
		return err
	})
	return e, err
}

// firstNaming is the index of the first announcement heard at or after t
// that names lane, or -1.
func firstNaming(heard []announcement, t time.Time, lane int) int {
	j, _ := slices.BinarySearchFunc(heard, t, func(a announcement, t time.Time) int { return a.at.Compare(t) })
	for ; j < len(heard); j++ {
		if heard[j].lanes&(1<<lane) != 0 {
			return j
		}
	}
	return -1
}

// slowCommits makes every COMMIT that enqueued take a random time up to
// d: a deferred trigger on the messages sleeps in it, as a COMMIT waits
// for a stalled WAL flush, its session active in the COMMIT.
func slowCommits(ctx context.Context, pool *pgxpool.Pool, d time.Duration) error {
	_, err := pool.Exec(ctx, fmt.Sprintf(`
CREATE FUNCTION outboxd.bench_slow_commit() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_sleep(random() * %f); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER bench_slow_commit AFTER INSERT ON outboxd.outbox_messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION outboxd.bench_slow_commit()`, d.Seconds()))
	return err
}
