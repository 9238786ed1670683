package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// startDaemonWrapped is startDaemon run through sh, so that the test can
// start outboxd as a non-interactive shell's & does: with SIGINT ignored.
func startDaemonWrapped(t *testing.T, ignoreINT bool, config string) *daemon {
	t.Helper()
	trap := ""
	if ignoreINT {
		trap = `trap "" INT; `
	}
	// exec keeps the pid, and an ignored signal stays ignored across it.
	return launch(t, nil, func(listen string) *exec.Cmd {
		return exec.Command("/bin/sh", "-c", trap+`exec "$0" "$@"`, os.Args[0], "serve", "--config", config, "--listen", listen)
	})
}

// hangingSink makes the bundle's sink hold every delivery until the test
// ends, and returns whether one has arrived.
func hangingSink(t *testing.T, b serveBundle) *atomic.Bool {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var arrived atomic.Bool
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		arrived.Store(true)
		<-release
		return http.StatusOK, nil
	}
	return &arrived
}

// running reports whether the process has not exited, from its state: not
// reaped (done open) and not a zombie.
func (d *daemon) running(t *testing.T) bool {
	t.Helper()
	select {
	case <-d.done:
		return false
	default:
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces, so look after the ")".
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// The first signal stops gracefully, waiting for in-flight deliveries; a
// second one ends the process at once, also when outboxd was started with
// SIGINT ignored (a shell's &), and for SIGTERM or SIGHUP twice as for
// SIGINT, with the status a shell gives a signal's death.
func TestServeSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		ignoreINT bool
		sig       syscall.Signal
	}{
		{"SIGINT", false, syscall.SIGINT},
		{"SIGINT, started with SIGINT ignored", true, syscall.SIGINT},
		{"SIGTERM", false, syscall.SIGTERM},
		// A closed terminal or SSH session: it ended serve at once.
		{"SIGHUP", false, syscall.SIGHUP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newServeBundle(t)
			arrived := hangingSink(t, b)
			d := startDaemonWrapped(t, tc.ignoreINT, serveConfig(t, b.url, b.sink.URL()))
			d.waitReady(t)
			if _, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 20*time.Second, "a delivery in flight", arrived.Load)
			if err := d.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 10*time.Second, "the graceful stop to begin", func() bool {
				return strings.Contains(d.stderr.String(), "stopping: finishing in-flight deliveries")
			})
			// The stop waits for the hanging delivery (shutdown_timeout
			// 10 s): the process is still there.
			if !d.running(t) {
				t.Fatal("exited on the first signal with a delivery in flight")
			}
			start := time.Now()
			if err := d.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-d.done:
				t.Logf("exited %s after the second signal", time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatal("still running 5 s after the second signal (shutdown_timeout is 10 s)")
			}
			// 128+n, as a shell reports a signal's death: 130, 143, 129
			// (docs/configuration.md).
			if got := d.cmd.ProcessState.ExitCode(); got != 128+int(tc.sig) {
				t.Fatalf("exit status %d, want %d", got, 128+int(tc.sig))
			}
		})
	}
}

// Started with SIGHUP ignored (nohup), serve keeps ignoring it: a closed
// session does not stop it. After a SIGHUP it still delivers, which a
// stopping serve does not.
func TestServeUnderNohupIgnoresSIGHUP(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := serveConfig(t, b.url, b.sink.URL())
	d := launch(t, nil, func(listen string) *exec.Cmd {
		return exec.Command("/bin/sh", "-c", `trap "" HUP; exec "$0" "$@"`, os.Args[0], "serve", "--config", config, "--listen", listen)
	})
	d.waitReady(t)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "a delivery after the SIGHUP", func() bool { return len(b.sink.Requests()) == 1 })
	if strings.Contains(d.stderr.String(), "stopping") || !d.running(t) {
		t.Fatalf("SIGHUP stopped serve started under nohup:\n%s", d.stderr.String())
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// A graceful stop that runs out of shutdown_timeout says so in one
// sentence, without package names or Go's error words.
func TestServeShutdownTimeoutMessage(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	arrived := hangingSink(t, b)
	config := serveConfig(t, b.url, b.sink.URL())
	body, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(strings.Replace(string(body), "shutdown_timeout: 10s", "shutdown_timeout: 500ms", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, config)
	d.waitReady(t)
	if _, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "a delivery in flight", arrived.Load)
	if code := d.terminate(t); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var plain []string
	for _, l := range strings.Split(strings.TrimSpace(d.stderr.String()), "\n") {
		if !strings.HasPrefix(l, "{") { // not a JSON log line
			plain = append(plain, l)
		}
	}
	want := "outboxd serve: stopped after shutdown_timeout (500ms) with deliveries in flight; they were cut off and will be sent again"
	if len(plain) != 1 || plain[0] != want {
		t.Fatalf("stderr besides the log: %q, want %q", plain, want)
	}
	// The log counts them (the attempts' own lines are rate-limited).
	if log := d.stderr.String(); !strings.Contains(log, `"msg":"in-flight deliveries cut off by the stop (its deadline, or the start context cancelled); recorded as abandoned, they will be sent again"`) ||
		!strings.Contains(log, `"abandoned":1}`) {
		t.Fatalf("no log line counting the cut-off deliveries:\n%s", log)
	}
}

// SIGTERM while the dispatcher's start waits on a lock (its lanes' rows
// here) ends the process at once: the startup is not beyond the signal.
func TestServeSignalDuringABlockedStartup(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_lanes IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	waitUntil(t, 20*time.Second, "the start's insert of lanes to wait on the lock", func() bool {
		var n int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.relation = 'outboxd.outbox_lanes'::regclass AND a.query LIKE '%INSERT INTO%outbox_lanes%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after SIGTERM, its start blocked on a lock")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM during the startup, want 0:\n%s", code, d.stderr.String())
	}
}
