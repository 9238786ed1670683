package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

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

// The "outboxd serving" line gives the dispatcher settings in effect,
// defaults included: batch_bytes left out of the file is 1048576, and
// what the file sets is what runs (an operator whose 0.99 became the
// default could not see it).
func TestServeLogsTheSettingsInEffect(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	d.waitReady(t)
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{`"batch_size":200`, `"batch_bytes":1048576`, `"per_key_batch":10`, `"lease_ttl":"1s"`,
		`"acquire_interval":"200ms"`, `"sweep_interval":"100ms"`, `"shutdown_timeout":"10s"`} {
		if !strings.Contains(d.stderr.String(), want) {
			t.Errorf("the serving line lacks %s:\n%s", want, d.stderr.String())
		}
	}
}
