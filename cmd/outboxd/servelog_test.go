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
