package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// Secrets that tests put in URLs and the environment; no output may
// contain them.
const (
	testPassword = "S3cretPW"
	envSecret    = "Env5ecretValue"
	pathToken    = "PathT0ken"
	queryToken   = "QueryT0ken"
)

// noSecrets fails t if any output contains a test secret.
func noSecrets(t *testing.T, what string, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, s := range []string{testPassword, envSecret, pathToken, queryToken} {
			if strings.Contains(o, s) {
				t.Errorf("%s: output contains the secret %q:\n%s", what, s, o)
			}
		}
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNoCommandPrintsASecret(t *testing.T) {
	t.Parallel()
	unreachable := "postgres://app:" + testPassword + "@127.0.0.1:1/db?connect_timeout=1"
	env := []string{"DATABASE_URL=" + unreachable, "VERIFY_SECRET=" + envSecret, "HOOK_TOKEN=" + queryToken}
	goodConfig := writeFile(t, "good.yaml", fmt.Sprintf(`database_url: %s
destinations:
  hook:
    url: http://127.0.0.1:1/services/%s?token=${HOOK_TOKEN}
    headers:
      Authorization: Bearer ${VERIFY_SECRET}
`, unreachable, pathToken))
	badConfig := writeFile(t, "bad.yaml", "database_url: "+unreachable+"\ndestinations:\n  hook:\n    url: ftp://u:"+testPassword+"@x/"+pathToken+"\n")
	typoConfig := writeFile(t, "typo.yaml", "database_ulr: "+unreachable+"\n")
	// Token-only user info: nats://TOKEN@host.
	natsConfig := writeFile(t, "nats.yaml", "destinations:\n  n:\n    type: nats\n    url: nats://"+testPassword+"@127.0.0.1:notaport\n")
	natsHTTPConfig := writeFile(t, "natshttp.yaml", "destinations:\n  n:\n    type: nats\n    url: http://"+testPassword+"@127.0.0.1:1/\n")

	var cmds [][]string
	cmds = append(cmds, []string{"help"}, []string{"--help"}, []string{}, []string{"nope"})
	for _, c := range []string{"migrate", "serve", "send", "verify", "inbox", "outbox", "version"} {
		cmds = append(cmds, []string{c, "--help"}, []string{c, "-h"}, []string{c, "--bogus"})
	}
	for _, a := range []string{"up", "down", "status", "version"} {
		cmds = append(cmds, []string{"migrate", a, "--help"}, []string{"migrate", a}, []string{"migrate", a, "--bogus"})
	}
	for _, a := range []string{"dead", "requeue --all", "purge --all", "show 0190a0f4-4b8e-7c3a-9b55-1b8f3f2f2a10", "paused", "resume x"} {
		cmds = append(cmds, append(strings.Fields("outbox "+a), "--help"), strings.Fields("outbox "+a))
	}
	for _, a := range []string{"show a b", "find a=b", "failures"} {
		cmds = append(cmds, append(strings.Fields("inbox "+a), "--help"), strings.Fields("inbox "+a))
	}
	for _, u := range []string{
		"postgres://app:" + testPassword + "@%zz/db",
		"postgres://app:" + testPassword + "@host:99999/db",
		"mysql://app:" + testPassword + "@host/db",
		"host=127.0.0.1 password=" + testPassword + " port=x",
		"postgres://app:" + testPassword + "@[::1/db",
		"postgres://no_such_role_x:" + testPassword + "@127.0.0.1:5432/postgres?connect_timeout=5",
		// A backslash-escaped space, and an unencoded @ in the password.
		`host=127.0.0.1 password=Xy\ ` + testPassword + ` port=abc`,
		"postgres://u:Xy@" + testPassword + "@127.0.0.1:notaport/x",
		"postgres://u:Xy@" + testPassword + "@127.0.0.1:5432/x?connect_timeout=2",
		"postgres://" + testPassword + "@127.0.0.1:notaport/x",
		"postgres://app:" + testPassword + "@127.0.0.1:5432/x?pool_max_conns=abc",
	} {
		cmds = append(cmds, []string{"migrate", "up", "--database-url", u}, []string{"outbox", "dead", "--database-url", u},
			[]string{"outbox", "dead", "--json", "--database-url", u}, []string{"inbox", "find", "a=b", "--json", "--database-url", u})
	}
	cmds = append(cmds,
		[]string{"serve", "--config", goodConfig, "--check"},
		[]string{"serve", "--config", goodConfig, "--check=connect"},
		[]string{"serve", "--config", goodConfig},
		[]string{"serve", "--config", badConfig},
		[]string{"serve", "--config", typoConfig},
		[]string{"serve", "--config", natsConfig, "--check"},
		[]string{"serve", "--config", natsConfig},
		[]string{"serve", "--config", natsHTTPConfig, "--check"},
		[]string{"send", "--destination", "hook"},
		[]string{"verify", "--provider", "github", "--secret-env", "VERIFY_SECRET", "--header", "X-Hub-Signature-256: sha256=00"},
		[]string{"verify", "--provider", "standard-webhooks", "--secret-env", "VERIFY_SECRET"},
	)
	for _, args := range cmds {
		r := outboxdIn(t, env, "{}", args...)
		noSecrets(t, strings.Join(args, " "), r.stdout, r.stderr)
		if strings.Contains(r.stdout+r.stderr, "panic") {
			t.Errorf("%v: panic:\n%s", args, r.stderr)
		}
	}
}

// A password in the database URL and a token in a destination's URL appear
// nowhere a running dispatcher writes: its log, /readyz, the attempt rows
// that outbox show prints. Nor do a message's credential headers, which
// outbox show printed in clear (the console redacted them).
func TestServeKeepsURLSecretsOutOfLogsAndRows(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	u, err := url.Parse(b.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), testPassword) // the test server trusts local connections
	closed := freeAddr(t)
	config := writeFile(t, "outboxd.yaml", fmt.Sprintf(`database_url: %s
dispatcher:
  lease_ttl: 1s
  acquire_interval: 200ms
  sweep_interval: 100ms
  shutdown_timeout: 10s
retry:
  base: 20ms
  max: 100ms
destinations:
  hook:
    url: http://u:%s@%s/services/%s?token=%s
    timeout: 1s
`, u, testPassword, closed, pathToken, queryToken))
	d := startDaemon(t, config, "--log-level", "debug")
	e, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "hook", Payload: []byte(`{}`),
		Headers: http.Header{"Authorization": {"Bearer " + testPassword}, "X-Api-Key": {testPassword}, "X-Trace": {"kept"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "failed attempts", func() bool {
		m, err := b.ob.Get(context.Background(), b.pool, e.ID)
		return err == nil && m.Attempts >= 2
	})
	resp, err := http.Get("http://" + d.listen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	show := runIn("outbox", "show", e.ID.String(), "--database-url", u.String())
	if show.code != 0 || !strings.Contains(show.stdout, "connection refused") || !strings.Contains(show.stdout, closed) {
		t.Fatalf("outbox show: %+v", show)
	}
	// The JSON shows what the text shows, no more.
	showJSON := runIn("outbox", "show", e.ID.String(), "--json", "--database-url", u.String())
	if showJSON.code != 0 || !strings.Contains(showJSON.stdout, "connection refused") || !strings.Contains(showJSON.stdout, closed) {
		t.Fatalf("outbox show --json: %+v", showJSON)
	}
	if !strings.Contains(show.stdout, "Authorization: [redacted]") || !strings.Contains(show.stdout, "X-Trace: kept") ||
		!strings.Contains(showJSON.stdout, `"X-Api-Key": [`) || !strings.Contains(showJSON.stdout, `"[redacted]"`) {
		t.Errorf("headers in outbox show:\n%s\n%s", show.stdout, showJSON.stdout)
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	noSecrets(t, "serve and outbox show", d.stderr.String(), string(body), show.stdout, show.stderr, showJSON.stdout, showJSON.stderr)
	// Durations in the log read as people write them.
	if !strings.Contains(d.stderr.String(), `"timeout":"10s"`) {
		t.Errorf("want \"timeout\":\"10s\" in the log:\n%s", d.stderr.String())
	}
}
