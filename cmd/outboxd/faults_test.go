package main

// The fault-injection suite: real `outboxd serve` processes, a real
// PostgreSQL and recording HTTP sinks, under the failures operators cause.
// Each test names the promise of docs/design.md ("What happens on failure")
// that it checks; TestServeSurvivesSIGKILL (serve_test.go) and
// worker.TestPostgresRestartUnderLoad cover the crash and the database
// restart.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
)

const (
	faultTTL     = 2 * time.Second
	faultAcquire = 200 * time.Millisecond
	// takeoverBound is the documented takeover time, lease_ttl +
	// acquire_interval, plus an allowance for queries (and, where a test
	// measures from a kill, process start) on a loaded two-core CI machine.
	takeoverBound = faultTTL + faultAcquire + time.Second
)

// faultConfig writes a config whose destinations (name -> URL) use the
// given per-request timeout.
func faultConfig(t *testing.T, dbURL string, timeout time.Duration, dests map[string]string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "database_url: %q\ndispatcher:\n  lease_ttl: %s\n  acquire_interval: %s\n  sweep_interval: 100ms\n  shutdown_timeout: 5s\n",
		dbURL, faultTTL, faultAcquire)
	b.WriteString("retry:\n  base: 20ms\n  max: 200ms\ndestinations:\n")
	for name, url := range dests {
		fmt.Fprintf(&b, "  %s:\n    url: %q\n    timeout: %s\n    max_concurrency: 16\n", name, url, timeout)
	}
	path := filepath.Join(t.TempDir(), "outboxd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lanesHeld counts the live leases of destination dest that id holds.
func lanesHeld(t *testing.T, pool *pgxpool.Pool, id, dest string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_lanes
WHERE owner = $1 AND destination = $2 AND lease_until > now()`, id, dest).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// enqueueTo commits n messages for dest over keys ordering keys (unkeyed
// when keys is 0), numbered from first.
func enqueueTo(t *testing.T, pool *pgxpool.Pool, dest string, first, n, keys int) {
	t.Helper()
	ob, _ := outbox.New(nil)
	var msgs []outbox.Message
	for i := first; i < first+n; i++ {
		key := ""
		if keys > 0 {
			key = fmt.Sprintf("%s-k%d", dest, i%keys)
		}
		msgs = append(msgs, outbox.Message{Destination: dest, OrderingKey: key,
			Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i, key)})
	}
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := ob.EnqueueBatch(ctx, tx, msgs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func countStatus(t *testing.T, pool *pgxpool.Pool, dest, status string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxd.outbox_messages
WHERE destination = $1 AND status = $2`, dest, status).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Restart with the same --id within lease_ttl (a pod name, a systemd unit):
// the new process must not renew its predecessor's leases as its own; it
// takes the lanes once they expire, within lease_ttl + acquire_interval, and
// delivers.
func TestFaultRestartWithSameID(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := faultConfig(t, b.url, 5*time.Second, map[string]string{"sink": b.sink.URL()})
	d := startDaemon(t, config, "--id", "worker-1")
	waitUntil(t, 20*time.Second, "the first process to hold every lane", func() bool { return lanesHeld(t, b.pool, "worker-1", "sink") == 32 })
	d.kill(t)
	killed := time.Now()
	startDaemon(t, config, "--id", "worker-1")
	enqueueTo(t, b.pool, "sink", 0, 20, 5)
	waitUntil(t, 30*time.Second, "20 messages delivered after the restart", func() bool { return countStatus(t, b.pool, "sink", "delivered") == 20 })
	if took := time.Since(killed); took > takeoverBound+time.Second {
		t.Fatalf("delivery resumed %s after the kill; lease_ttl + acquire_interval is %s", took, faultTTL+faultAcquire)
	} else {
		t.Logf("restart under the same id delivered everything %s after the kill", took.Round(time.Millisecond))
	}
}

// A SIGKILLed dispatcher's lanes are taken by the survivor within lease_ttl
// + acquire_interval (docs/configuration.md, lease_ttl), all of them, not a
// "fair share" that still counts the dead process.
func TestFaultTakeoverAfterKillWithinLeaseTTL(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := faultConfig(t, b.url, 5*time.Second, map[string]string{"sink": b.sink.URL()})
	first := startDaemon(t, config, "--id", "first")
	startDaemon(t, config, "--id", "second")
	waitUntil(t, 20*time.Second, "each process to hold half the lanes", func() bool {
		return lanesHeld(t, b.pool, "first", "sink") == 16 && lanesHeld(t, b.pool, "second", "sink") == 16
	})
	first.kill(t)
	killed := time.Now()
	waitUntil(t, 20*time.Second, "the survivor to hold every lane", func() bool { return lanesHeld(t, b.pool, "second", "sink") == 32 })
	took := time.Since(killed)
	t.Logf("takeover of all 32 lanes %s after the kill (lease_ttl %s, acquire_interval %s)", took.Round(time.Millisecond), faultTTL, faultAcquire)
	if took > takeoverBound {
		t.Fatalf("takeover took %s, documented bound lease_ttl + acquire_interval = %s", took, faultTTL+faultAcquire)
	}
	enqueueTo(t, b.pool, "sink", 0, 100, 10)
	waitUntil(t, 20*time.Second, "delivery by the survivor", func() bool { return countStatus(t, b.pool, "sink", "delivered") == 100 })
}

// A lane whose release fails (a statement that fails halfway) is not renewed
// by anyone: it expires and another dispatcher drains it. Both bounds are
// measured per lane on the database's clock, from the lane's failed
// release, so that neither process start nor the first process noticing
// the second counts against them: the lease runs out within lease_ttl of
// the failure (plus one renewal round already under way), and another
// process takes it within lease_ttl + acquire_interval.
func TestFaultFailedReleaseDoesNotStrandLanes(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := faultConfig(t, b.url, 5*time.Second, map[string]string{"sink": b.sink.URL()})
	startDaemon(t, config, "--id", "first")
	waitUntil(t, 20*time.Second, "the first process to hold every lane", func() bool { return lanesHeld(t, b.pool, "first", "sink") == 32 })
	// From now on every release fails, as if the database went away in the
	// middle of it; setval survives the rollback, so it stamps the lane's
	// first failure (one sequence per lane). Each takeover from first by
	// second is written down with the lease it ended.
	if _, err := b.pool.Exec(context.Background(), `
DO $$ BEGIN
  FOR i IN 0..31 LOOP EXECUTE format('CREATE SEQUENCE public.release_failed_%s', i); END LOOP;
END $$;
CREATE FUNCTION public.fail_release() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s regclass := format('public.release_failed_%s', NEW.lane)::regclass;
BEGIN
  IF pg_sequence_last_value(s) IS NULL THEN
    PERFORM setval(s, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint);
  END IF;
  RAISE EXCEPTION 'injected: release fails';
END $$;
CREATE TRIGGER fail_release BEFORE UPDATE ON outboxd.outbox_lanes
FOR EACH ROW WHEN (NEW.owner IS NULL) EXECUTE FUNCTION public.fail_release();
CREATE TABLE public.takeovers (lane smallint, old_until timestamptz, at timestamptz);
CREATE FUNCTION public.note_takeover() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.takeovers VALUES (NEW.lane, OLD.lease_until, clock_timestamp());
  RETURN NULL;
END $$;
CREATE TRIGGER note_takeover AFTER UPDATE ON outboxd.outbox_lanes
FOR EACH ROW WHEN (OLD.owner = 'first' AND NEW.owner = 'second') EXECUTE FUNCTION public.note_takeover();`); err != nil {
		t.Fatal(err)
	}
	// A second process joins: the first gives back half its lanes, and
	// every one of those releases fails.
	startDaemon(t, config, "--id", "second")
	waitUntil(t, 20*time.Second, "the second process to hold its half", func() bool { return lanesHeld(t, b.pool, "second", "sink") == 16 })
	var (
		taken, stamped                      int
		took, leaseLeft, expiredToTakenOver time.Duration
	)
	if err := b.pool.QueryRow(context.Background(), `
WITH t AS (
    SELECT t.*, to_timestamp(pg_sequence_last_value(format('public.release_failed_%s', t.lane)::regclass) / 1e6) AS failed_at
    FROM public.takeovers t
)
SELECT count(DISTINCT lane), count(failed_at),
       coalesce(max(at - failed_at), '0'), coalesce(max(old_until - failed_at), '0'), coalesce(max(at - old_until), '0')
FROM t`).Scan(&taken, &stamped, &took, &leaseLeft, &expiredToTakenOver); err != nil {
		t.Fatalf("reading the takeovers: %v", err)
	}
	t.Logf("%d lanes whose release failed were taken over at most %s after their failed release (their leases ran at most %s past it; takeover at most %s after a lease ran out)",
		taken, took.Round(time.Millisecond), leaseLeft.Round(time.Millisecond), expiredToTakenOver.Round(time.Millisecond))
	if taken != 16 || stamped != 16 {
		t.Fatalf("%d lanes changed hands from first to second, %d of them after a failed release; want 16 and 16", taken, stamped)
	}
	// A renewal round already under way when the release fails may still
	// extend the lease once: at most acquire_interval later, plus an
	// allowance for a loaded machine. Renewing it after that would strand
	// the lane for as long as it goes on.
	if limit := faultTTL + faultAcquire + 300*time.Millisecond; leaseLeft > limit {
		t.Fatalf("a lease ran %s past its failed release; nobody may renew it after the failure, so at most lease_ttl (%s) plus one round under way (%s)", leaseLeft, faultTTL, limit)
	}
	if took > takeoverBound {
		t.Fatalf("took %s; a lane that failed to release must expire and be taken within lease_ttl + acquire_interval (%s)", took, faultTTL+faultAcquire)
	}
	if n := lanesHeld(t, b.pool, "first", "sink"); n != 16 {
		t.Fatalf("first holds %d lanes, want 16", n)
	}
	enqueueTo(t, b.pool, "sink", 0, 200, 40)
	waitUntil(t, 20*time.Second, "every message delivered", func() bool { return countStatus(t, b.pool, "sink", "delivered") == 200 })
}

// Two dispatchers with different destination sets ({a} and {a, b}): no
// message is dead-lettered because the process that holds its lane lacks
// its destination. With only {a} running, b's messages wait, visible in the
// log, the metric and /readyz, and `outboxd send` warns.
func TestFaultDifferentDestinationSets(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	other := sink.Start()
	t.Cleanup(other.Close)
	onlyA := startDaemon(t, faultConfig(t, b.url, 5*time.Second, map[string]string{"a": b.sink.URL()}), "--id", "only-a")
	both := startDaemon(t, faultConfig(t, b.url, 5*time.Second, map[string]string{"a": b.sink.URL(), "b": other.URL()}), "--id", "a-and-b")
	waitUntil(t, 20*time.Second, "a split between the two and b held by the second", func() bool {
		return lanesHeld(t, b.pool, "only-a", "a") == 16 && lanesHeld(t, b.pool, "a-and-b", "b") == 32
	})
	enqueueTo(t, b.pool, "a", 0, 300, 30)
	enqueueTo(t, b.pool, "b", 300, 300, 30)
	waitUntil(t, 30*time.Second, "every message of both destinations delivered", func() bool {
		return countStatus(t, b.pool, "a", "delivered") == 300 && countStatus(t, b.pool, "b", "delivered") == 300
	})
	if dead := countStatus(t, b.pool, "a", "dead") + countStatus(t, b.pool, "b", "dead"); dead != 0 {
		t.Fatalf("%d messages dead-lettered", dead)
	}

	// The only dispatcher of b stops: b's new messages wait, visibly.
	if code := both.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	enqueueTo(t, b.pool, "b", 600, 5, 0)
	get := onlyA.get
	waitUntil(t, 20*time.Second, "the unserved destination in /metrics", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `outboxd_unserved_pending_messages{destination="b"} 5`)
	})
	code, ready := get("/readyz")
	if code != 200 || !strings.Contains(ready, `destination "b": 5 pending messages, no live dispatcher serves it`) {
		t.Fatalf("/readyz %d %q", code, ready)
	}
	if !strings.Contains(onlyA.stderr.String(), "no live dispatcher serves this destination") {
		t.Fatal("no log line about the unserved destination")
	}
	// Never about its own destination (a check before it registered did).
	for _, l := range strings.Split(onlyA.stderr.String(), "\n") {
		if strings.Contains(l, "no live dispatcher serves") && strings.Contains(l, `"destination":"a"`) {
			t.Fatalf("a dispatcher reported its own destination as unserved: %s", l)
		}
	}
	send := runInWithStdin(t, `{"x":1}`, "send", "--database-url", b.url, "--destination", "b")
	if send.code != 0 || !strings.Contains(send.stderr, `warning: no live dispatcher serves destination "b"`) {
		t.Fatalf("send to an unserved destination: %+v", send)
	}
	if dead := countStatus(t, b.pool, "b", "dead"); dead != 0 || countStatus(t, b.pool, "b", "pending") != 6 {
		t.Fatalf("b: %d dead, %d pending; want 0 and 6", dead, countStatus(t, b.pool, "b", "pending"))
	}
	// A dispatcher of b is back: b drains, and its gauges read 0 rather
	// than vanish (an alert on them resolves, a graph shows the drop).
	startDaemon(t, faultConfig(t, b.url, 5*time.Second, map[string]string{"b": other.URL()}), "--id", "b-again")
	waitUntil(t, 30*time.Second, "b's gauges at 0 on the first process", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `outboxd_unserved_pending_messages{destination="b"} 0`) &&
			strings.Contains(m, `outboxd_pending_messages{destination="b"} 0`)
	})
}

// A destination that hangs slows only itself: while every request to it
// hangs (and its timeout is a minute), a healthy destination's messages are
// all delivered.
func TestFaultHangingDestinationDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	hang := make(chan struct{})
	slow := sink.Start()
	slow.Respond = func(r *http.Request, _ []byte) (int, http.Header) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return http.StatusOK, nil
	}
	t.Cleanup(func() { close(hang); slow.Close() })
	config := faultConfig(t, b.url, time.Minute, map[string]string{"slow": slow.URL(), "fast": b.sink.URL()})
	enqueueTo(t, b.pool, "slow", 0, 640, 64)
	startDaemon(t, config, "--id", "one")
	waitUntil(t, 20*time.Second, "requests hanging at the slow destination", func() bool { return slow.InFlight() >= 16 })
	enqueueTo(t, b.pool, "fast", 1000, 64, 8)
	waitUntil(t, 20*time.Second, "the healthy destination's 64 messages", func() bool { return countStatus(t, b.pool, "fast", "delivered") == 64 })
	if n := slow.InFlight(); n < 16 {
		t.Fatalf("only %d requests in flight at the slow destination: the test did not hold it", n)
	}
}

// A process frozen (SIGSTOP) while it holds a lane, resumed (SIGCONT) after
// another took the lane, sends nothing more: its lease deadline passed, so
// it neither continues the batch in hand nor claims a new one.
func TestFaultFrozenProcessDoesNotSendBesideNewOwner(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	held := make(chan struct{})
	release := make(chan struct{})
	var once, released sync.Once
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		once.Do(func() { close(held); <-release }) // hold the first request only
		return http.StatusOK, nil
	}
	answer := func() { released.Do(func() { close(release) }) }
	t.Cleanup(answer) // a test that fails while it holds: the sink can close
	// One key, ten messages: the first process claims them as one batch.
	enqueueTo(t, b.pool, "sink", 0, 10, 1)
	config := faultConfig(t, b.url, 30*time.Second, map[string]string{"sink": b.sink.URL()})
	frozen := startDaemon(t, config, "--id", "frozen")
	<-held // its first request is in flight
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = frozen.cmd.Process.Signal(syscall.SIGCONT) })
	// kill(2) returns before the stop takes effect: on a loaded machine the
	// process ran on for 50 ms, took the answer below and sent the next
	// messages, freezing anywhere, even between its lease check and a write
	// (the known limit of docs/design.md). The freeze must land where this
	// test means it: the first request written, its answer awaited.
	waitUntil(t, 10*time.Second, "every thread of the frozen process stopped", func() bool { return stopped(t, frozen.cmd.Process.Pid) })
	answer() // the answer waits in the frozen process's socket
	startDaemon(t, config, "--id", "successor")
	waitUntil(t, 30*time.Second, "the successor to deliver all ten", func() bool { return countStatus(t, b.pool, "sink", "delivered") == 10 })
	before := len(b.sink.Requests())
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the resumed process to notice its lease ran out", func() bool {
		log := frozen.stderr.String()
		return strings.Contains(log, "lease of a lane ran out") || strings.Contains(log, "lost the lease of a lane")
	})
	// That line may come from any of its 32 runners (similar ones are left
	// out); once it holds its fair share again under new tokens, it has run
	// for several acquire intervals, the key's runner included.
	waitUntil(t, 20*time.Second, "the resumed process to hold its half of the lanes", func() bool { return lanesHeld(t, b.pool, "frozen", "sink") == 16 })
	if after := len(b.sink.Requests()); after != before {
		for _, r := range b.sink.Requests()[before:] {
			t.Logf("sent after SIGCONT: %s", r.Payload)
		}
		t.Fatalf("the resumed process sent %d requests beside the lane's new owner", after-before)
	}
	b.checkSink(t, 10)
}

// stopped reports whether every thread of process pid is stopped (state T
// in /proc/<pid>/task/*/stat).
func stopped(t *testing.T, pid int) bool {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("no threads of process %d in /proc: %v", pid, err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			return false // a thread that just ended
		}
		// The state follows the command name, which may hold spaces.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) == 0 || fields[0] != "T" {
			return false
		}
	}
	return true
}
