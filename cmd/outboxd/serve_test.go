package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

type daemon struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	listen string
	done   chan struct{}
	err    error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		// The kernel may give a closed port again at once: a test's console
		// address was the ops address its daemon got next (CI, 1 run).
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// handedOut holds the addresses freeAddr gave, never given twice.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// serveConfig writes a config file for a daemon that sends to the sink.
func serveConfig(t *testing.T, dbURL, sinkURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outboxd.yaml")
	cfg := fmt.Sprintf(`database_url: %q
dispatcher:
  lease_ttl: 1s
  acquire_interval: 200ms
  sweep_interval: 100ms
  shutdown_timeout: 10s
retry:
  base: 20ms
  max: 200ms
destinations:
  sink:
    url: %q
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    timeout: 5s
    max_concurrency: 16
`, dbURL, sinkURL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// setLeaseTTL changes the lease_ttl of a serveConfig file.
func setLeaseTTL(t *testing.T, config, ttl string) {
	t.Helper()
	raw, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(raw), "lease_ttl: 1s", "lease_ttl: "+ttl, 1)
	if changed == string(raw) {
		t.Fatal("serveConfig has no lease_ttl: 1s to change")
	}
	if err := os.WriteFile(config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startDaemon runs `outboxd serve` as a real process.
func startDaemon(t *testing.T, config string, extra ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, nil, config, extra...)
}

// startDaemonEnv is startDaemon with extra environment.
func startDaemonEnv(t *testing.T, env []string, config string, extra ...string) *daemon {
	t.Helper()
	return launch(t, env, func(listen string) *exec.Cmd {
		return exec.Command(os.Args[0], append([]string{"serve", "--config", config, "--listen", listen}, extra...)...)
	})
}

// launch starts the command build makes for a free listen address as an
// outboxd process (this test binary with OUTBOXD_TEST_MAIN=1), collects its
// stderr, and kills it when the test ends (printing its log on failure).
func launch(t *testing.T, env []string, build func(listen string) *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{stderr: &syncbuf.Buffer{}, listen: freeAddr(t), done: make(chan struct{})}
	d.cmd = build(d.listen)
	d.cmd.Env = append(append(os.Environ(), "OUTBOXD_TEST_MAIN=1"), env...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("outboxd serve log:\n%s", d.stderr.String())
		}
	})
	return d
}

// probeClient bounds each probe: a hung ops port fails the test, not the
// suite's timeout.
var probeClient = &http.Client{Timeout: 10 * time.Second}

// get asks the daemon's ops port for path: the status and body, or 0 and
// the error.
func (d *daemon) get(path string) (int, string) {
	resp, err := probeClient.Get("http://" + d.listen + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
}

// terminate sends SIGTERM and returns the exit code.
func (d *daemon) terminate(t *testing.T) int {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatal("outboxd serve did not stop within 20 s of SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type serveBundle struct {
	url  string
	pool *pgxpool.Pool
	sink *sink.Sink
	ob   *outbox.Outbox
}

func newServeBundle(t *testing.T) serveBundle {
	t.Helper()
	url := pgtest.URL(t)
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	return serveBundle{url: url, pool: pgtest.Connect(t, url), sink: s, ob: ob}
}

// enqueue commits n messages over keys ordering keys, in order per key.
func (b serveBundle) enqueue(t *testing.T, n, keys int) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 200 {
		var msgs []outbox.Message
		for i := start; i < min(start+200, n); i++ {
			key := fmt.Sprintf("k%d", i%keys)
			msgs = append(msgs, outbox.Message{Destination: "sink", OrderingKey: key,
				Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, i, key)})
		}
		if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.ob.EnqueueBatch(ctx, tx, msgs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func (b serveBundle) status(t *testing.T) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT status, count(*) FROM outboxd.outbox_messages GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		_ = rows.Scan(&s, &n)
		out[s] = n
	}
	return out
}

// checkSink verifies what the sink saw: every message arrived, each always
// with the same idempotency key, and per key the accepted deliveries never
// went back to an earlier message except to re-send one already delivered.
func (b serveBundle) checkSink(t *testing.T, n int) (repeats int) {
	t.Helper()
	keyOf := map[int]string{}
	lastByKey := map[string]int{}
	delivered := map[int]bool{}
	for _, r := range b.sink.Accepted() {
		var p struct {
			I   int    `json:"i"`
			Key string `json:"key"`
		}
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if k, ok := keyOf[p.I]; ok && k != r.IdempotencyKey {
			t.Fatalf("message %d sent with two idempotency keys: %s, %s", p.I, k, r.IdempotencyKey)
		}
		keyOf[p.I] = r.IdempotencyKey
		if delivered[p.I] {
			repeats++
			continue
		}
		if last, ok := lastByKey[p.Key]; ok && p.I < last {
			t.Fatalf("key %s: message %d delivered after %d", p.Key, p.I, last)
		}
		lastByKey[p.Key] = p.I
		delivered[p.I] = true
	}
	if len(delivered) != n {
		t.Fatalf("%d of %d messages reached the sink", len(delivered), n)
	}
	return repeats
}

func TestServeSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		time.Sleep(time.Millisecond) // keep deliveries in flight when the kill lands
		return http.StatusOK, nil
	}
	const n = 3000
	b.enqueue(t, n, 20)
	config := serveConfig(t, b.url, b.sink.URL())
	for round := 0; round < 5; round++ {
		d := startDaemon(t, config)
		before := len(b.sink.Requests())
		waitUntil(t, 30*time.Second, fmt.Sprintf("round %d deliveries", round), func() bool {
			return len(b.sink.Requests()) >= before+200 || b.status(t)["pending"] == 0
		})
		d.kill(t)
	}
	d := startDaemon(t, config)
	waitUntil(t, 60*time.Second, "drain after the kills", func() bool { return b.status(t)["pending"] == 0 })
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if s := b.status(t); s["delivered"] != n {
		t.Fatalf("statuses %v", s)
	}
	repeats := b.checkSink(t, n)
	t.Logf("%d requests for %d messages; %d re-sends after kills, all with the same key", len(b.sink.Requests()), n, repeats)
}

func TestServeTwoProcesses(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	const n = 3000
	b.enqueue(t, n, 30)
	config := serveConfig(t, b.url, b.sink.URL())
	// A run without faults: leases long enough that a loaded machine does
	// not let one run out (1 s did, once, at a load average of 8 on two
	// cores: correct re-sends, but not what this test is about). Lanes
	// move between the two by giving back, not by expiry, so this costs
	// no time; an expiry's re-sends are the SIGKILL and freeze tests'.
	setLeaseTTL(t, config, "5s")
	d1 := startDaemon(t, config, "--id", "first")
	d2 := startDaemon(t, config, "--id", "second")
	waitUntil(t, 60*time.Second, "drain", func() bool { return b.status(t)["pending"] == 0 })
	for _, d := range []*daemon{d1, d2} {
		if code := d.terminate(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	if repeats := b.checkSink(t, n); repeats != 0 {
		t.Fatalf("%d repeated deliveries in a run without faults", repeats)
	}
	var dispatchers int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(DISTINCT dispatcher) FROM outboxd.outbox_attempt_log`).Scan(&dispatchers); err != nil {
		t.Fatal(err)
	}
	if dispatchers != 2 {
		t.Fatalf("work done by %d processes, want 2", dispatchers)
	}
}

func TestServeEndpointsSendAndMetrics(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	get := d.get
	waitUntil(t, 20*time.Second, "/readyz", func() bool { code, _ := get("/readyz"); return code == 200 })
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}

	send := exec.Command(os.Args[0], "send", "--database-url", b.url, "--destination", "sink",
		"--type", "smoke", "--ordering-key", "ops", "--idempotency-key", "smoke-1", "--header", "X-Smoke: yes")
	send.Env = append(os.Environ(), "OUTBOXD_TEST_MAIN=1")
	send.Stdin = strings.NewReader("{\"hello\":\"world\"}\n")
	out, err := send.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "enqueued") || !strings.Contains(string(out), "idempotency_key=smoke-1") {
		t.Fatalf("send: %v\n%s", err, out)
	}
	waitUntil(t, 20*time.Second, "the smoke message", func() bool { return len(b.sink.Accepted()) == 1 })
	got := b.sink.Accepted()[0]
	if string(got.Payload) != "{\"hello\":\"world\"}\n" || got.IdempotencyKey != "smoke-1" || got.Header.Get("X-Smoke") != "yes" {
		t.Fatalf("sink got %q key %q headers %v", got.Payload, got.IdempotencyKey, got.Header)
	}
	if got.Header.Get("Webhook-Signature") == "" || got.Header.Get("Webhook-Timestamp") == "" {
		t.Fatalf("unsigned request: %v", got.Header)
	}
	if ua := got.Header.Get("User-Agent"); ua != "outboxd/"+readBuildInfo().version {
		t.Fatalf("User-Agent %q, want outboxd/<version>", ua)
	}
	// The same idempotency key again is not a second message.
	again := runInWithStdin(t, "{}", "send", "--database-url", b.url, "--destination", "sink", "--idempotency-key", "smoke-1")
	if again.code != 0 || !strings.Contains(again.stdout, "exists") {
		t.Fatalf("second send: %+v", again)
	}

	waitUntil(t, 10*time.Second, "metrics", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `outboxd_delivery_attempts_total{destination="sink",outcome="delivered"} 1`)
	})
	_, metrics := get("/metrics")
	for _, want := range []string{"outboxd_attempt_duration_seconds_bucket", "outboxd_commit_to_delivery_seconds_count",
		`outboxd_claim_duration_seconds_count{destination="sink"}`,
		`outboxd_messages_total{destination="sink",status="delivered"} 1`, "go_goroutines",
		fmt.Sprintf(`outboxd_build_info{commit=%q,goversion=%q,version=%q} 1`, readBuildInfo().commit, readBuildInfo().goVersion, readBuildInfo().version)} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The process serves what registerServeMetrics registers, which the
	// alert, dashboard and docs tests check against (exportedMetrics).
	exported, _ := exportedMetrics(t)
	for _, m := range regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) `).FindAllStringSubmatch(metrics, -1) {
		if !exported[m[1]] {
			t.Errorf("/metrics serves %s, which exportedMetrics does not know", m[1])
		}
	}
	for _, want := range []string{"outboxd_database_up 1", `outboxd_pending_messages{destination="sink"} 0`, `outboxd_live_dispatchers{destination="sink"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if !strings.Contains(d.stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no graceful stop in the log:\n%s", d.stderr.String())
	}
}

func TestServeBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"typo":         "destinations:\n  a:\n    urll: http://x\n",
		"no dests":     "schema: outboxd\n",
		"unknown type": "destinations:\n  a:\n    type: carrier-pigeon\n",
		"bad url":      "destinations:\n  a:\n    url: ftp://x\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runIn("serve", "--config", path, "--database-url", "postgres://postgres@127.0.0.1:1/x")
		if r.code != 2 || r.stderr == "" {
			t.Errorf("%s: exit %d, stderr %q", name, r.code, r.stderr)
		}
	}
	// An --id that no lease row could hold: refused before connecting (a
	// trial's invalid UTF-8 started, then failed every statement for ever).
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("destinations:\n  a:\n    url: http://127.0.0.1:9/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"a\xffb": "--id must be UTF-8 text without control characters", "a\nb": "--id must be UTF-8 text without control characters",
		"a\u0085b": "--id must be UTF-8 text without control characters", strings.Repeat("x", 101): "--id is 101 bytes, at most 100",
	} {
		r := runIn("serve", "--config", good, "--database-url", "postgres://postgres@127.0.0.1:1/x", "--id", id)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("--id %q: exit %d, stderr %q", id, r.code, r.stderr)
		}
	}
}
