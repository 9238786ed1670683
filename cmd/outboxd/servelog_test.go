package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// startDaemonEnv is startDaemon with extra environment.
func startDaemonEnv(t *testing.T, env []string, config string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{stderr: &syncBuffer{}, listen: freeAddr(t), done: make(chan struct{})}
	d.cmd = exec.Command(os.Args[0], append([]string{"serve", "--config", config, "--listen", d.listen}, extra...)...)
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

func (d *daemon) waitReady(t *testing.T) {
	t.Helper()
	waitUntil(t, 20*time.Second, "/readyz", func() bool {
		resp, err := http.Get("http://" + d.listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// --log-level, OUTBOXD_LOG_LEVEL and log_level: in the file, in that order,
// set what serve logs.
func TestServeLogLevel(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := serveConfig(t, b.url, b.sink.URL())
	body, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, append([]byte("log_level: warn\n"), body...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		infoLogs bool
	}{
		{"file says warn", nil, nil, false},
		{"env says info", []string{"OUTBOXD_LOG_LEVEL=info"}, nil, true},
		{"flag says error", []string{"OUTBOXD_LOG_LEVEL=debug"}, []string{"--log-level", "error"}, false},
	} {
		d := startDaemonEnv(t, tc.env, config, tc.args...)
		d.waitReady(t)
		if code := d.terminate(t); code != 0 {
			t.Fatalf("%s: exit %d", tc.name, code)
		}
		logged := strings.Contains(d.stderr.String(), `"msg":"outboxd serving"`)
		if logged != tc.infoLogs {
			t.Errorf("%s: info lines logged: %v, want %v:\n%s", tc.name, logged, tc.infoLogs, d.stderr.String())
		}
	}
}

// The first SIGINT stops gracefully, waiting for in-flight deliveries; a
// second one ends the process at once.
func TestServeSecondInterruptExitsAtOnce(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var arrived atomic.Bool
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) {
		arrived.Store(true)
		select { // hang, so a delivery stays in flight
		case <-release:
		case <-time.After(30 * time.Second):
		}
		return http.StatusOK, nil
	}
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	d.waitReady(t)
	if _, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "a delivery in flight", arrived.Load)
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the graceful stop to begin", func() bool {
		return strings.Contains(d.stderr.String(), "stopping: finishing in-flight deliveries")
	})
	select {
	case <-d.done:
		t.Fatal("exited on the first SIGINT with a delivery in flight")
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
		t.Logf("exited %s after the second SIGINT", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("still running 3 s after the second SIGINT (shutdown_timeout is 10 s)")
	}
}
