package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/console"
)

// serve refuses a console: section that would open the console without
// credentials, or whose credential is missing from the environment, with
// the line at fault and never a credential.
func TestServeRefusesAConsoleWithoutCredentials(t *testing.T) {
	t.Parallel()
	const dest = "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n"
	for _, tc := range []struct {
		name, body, first string
		env               []string
	}{
		{"no users", dest + "console:\n  listen: 127.0.0.1:9500\n", "line 5: console: no credentials: name users (each with password_env or token_env), or set insecure_no_auth: true for local use; the console never opens by accident", nil},
		{"no listen", dest + "console:\n  insecure_no_auth: true\n", "line 5: console.listen: required: the console's own address, for example 127.0.0.1:9500", nil},
		{"both", dest + "console:\n  listen: 127.0.0.1:9500\n  users:\n    ada:\n      role: admin\n      password_env: A\n      token_env: B\n", "line 7: console.users.ada: set exactly one of password_env (basic auth) and token_env (bearer token)", nil},
		{"role", dest + "console:\n  listen: 127.0.0.1:9500\n  users:\n    ada:\n      role: root\n      password_env: A\n", `line 8: console.users.ada.role: "root": want viewer or admin`, nil},
		{"a password in clear", dest + "console:\n  listen: 127.0.0.1:9500\n  users:\n    ada:\n      role: admin\n      password: hunter2-in-clear\n", "line 9: console.users.ada.password: unknown setting (did you mean password_env?)", nil},
		{"insecure beyond loopback", dest + "console:\n  listen: 0.0.0.0:9500\n  insecure_no_auth: true\n", "line 5: console.listen: insecure_no_auth serves only a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): anyone who reaches it is an admin", nil},
		{"insecure on every interface", dest + "console:\n  listen: :9500\n  insecure_no_auth: true\n", "line 5: console.listen: insecure_no_auth serves only a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): anyone who reaches it is an admin", nil},
		{"a shared credential", dest + "console:\n  listen: 127.0.0.1:9500\n  users:\n    ada:\n      role: admin\n      password_env: A\n    bob:\n      role: viewer\n      token_env: A\n", "line 10: console.users.bob: A is also ada's credential: each user needs a secret of their own", nil},
		{"a colon in a name", dest + "console:\n  listen: 127.0.0.1:9500\n  users:\n    \"a:b\":\n      role: admin\n      password_env: A\n", "line 7: console.users.a:b: a user name cannot contain ':'", nil},
		{"unset variable", dest + "console:\n  listen: 127.0.0.1:9500\n  users:\n    ada:\n      role: admin\n      password_env: OUTBOXD_TEST_CONSOLE_UNSET\n", "", []string{"OUTBOXD_TEST_CONSOLE_UNSET="}},
	} {
		path := writeFile(t, "outboxd.yaml", tc.body)
		r := outboxd(t, append([]string{"DATABASE_URL="}, tc.env...), "serve", "--config", path, "--check")
		want := "outboxd serve: config " + path + ": " + tc.first
		if tc.first == "" {
			want = "outboxd serve: console.users.ada: OUTBOXD_TEST_CONSOLE_UNSET is not set or empty (it holds the user's credential)"
		}
		if r.code != 2 || firstLine(r.stderr) != want || strings.Contains(r.stderr, "hunter2") {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", tc.name, r.code, r.stderr, want)
		}
	}
}

// The console never shares the address of /metrics, and --check names it.
func TestConsoleListenOwnAddressAndCheck(t *testing.T) {
	t.Parallel()
	const dest = "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n"
	clash := writeFile(t, "outboxd.yaml", "listen: 127.0.0.1:9500\n"+dest+"console:\n  listen: 127.0.0.1:9500\n  insecure_no_auth: true\n")
	r := outboxd(t, []string{"DATABASE_URL="}, "serve", "--config", clash, "--check")
	if want := "outboxd serve: console.listen (127.0.0.1:9500) is the address of /metrics and /healthz (127.0.0.1:9500): give the console its own"; r.code != 2 || firstLine(r.stderr) != want {
		t.Errorf("console on the ops address: exit %d, %q; want 2 and %q", r.code, r.stderr, want)
	}
	r = outboxd(t, []string{"DATABASE_URL="}, "serve", "--config", clash, "--check", "--listen", ":9500")
	if r.code != 2 {
		t.Errorf("console on 127.0.0.1:9500, /metrics on :9500: exit %d, want 2", r.code)
	}
	ok := writeFile(t, "outboxd.yaml", dest+"console:\n  listen: 127.0.0.1:9501\n  users:\n    ada:\n      role: admin\n      password_env: OUTBOXD_TEST_CHECK_PW\n")
	r = outboxd(t, []string{"DATABASE_URL=", "OUTBOXD_TEST_CHECK_PW=check-secret-91"}, "serve", "--config", ok, "--check")
	if r.code != 0 || !strings.Contains(r.stdout, ", console 127.0.0.1:9501 (1 user(s))") || strings.Contains(r.stdout+r.stderr, "check-secret-91") {
		t.Errorf("--check with a console: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// A trial's five-letter password passed --check.
	r = outboxd(t, []string{"DATABASE_URL=", "OUTBOXD_TEST_CHECK_PW=short"}, "serve", "--config", ok, "--check")
	if want := "outboxd serve: console.users.ada: OUTBOXD_TEST_CHECK_PW holds 5 bytes, want at least 12: anyone who reaches the console may guess at it"; r.code != 2 ||
		firstLine(r.stderr) != want || strings.Contains(r.stdout+r.stderr, "short\n") {
		t.Errorf("--check with a short password: exit %d, %q; want 2 and %q", r.code, r.stderr, want)
	}
}

// A console: section serves the console on its own address, behind the
// credentials from the environment; the credential never reaches the log.
func TestServeMountsTheConsole(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	config := serveConfig(t, b.url, b.sink.URL())
	addr := freeAddr(t)
	const pass = "console-pass-9d1e7c"
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("console:\n  listen: " + addr + "\n  river_ui: true\n  users:\n    ada:\n      role: admin\n      password_env: OUTBOXD_TEST_CONSOLE_PW\n" +
		"    vic:\n      role: viewer\n      token_env: OUTBOXD_TEST_CONSOLE_TOKEN\n")
	f.Close()
	const token = "console-token-0b5a"
	d := startDaemonEnv(t, []string{"OUTBOXD_TEST_CONSOLE_PW=" + pass, "OUTBOXD_TEST_CONSOLE_TOKEN=" + token}, config, "--log-level", "debug")
	d.waitReady(t)
	get := func(user, pw string) int { return getAt(t, addr, "/api/destinations", user, pw) }
	if c := get("", ""); c != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d", c)
	}
	if c := get("ada", "wrong"); c != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", c)
	}
	if c := get("ada", pass); c != http.StatusOK {
		t.Fatalf("with the password: %d", c)
	}
	// River UI, behind the same authentication, for admins only.
	if c := getAt(t, addr, "/riverui/", "", ""); c != http.StatusUnauthorized {
		t.Fatalf("River UI without credentials: %d", c)
	}
	if c := getAt(t, addr, "/riverui/", "bearer", token); c != http.StatusForbidden {
		t.Fatalf("River UI as a viewer: %d", c)
	}
	for _, path := range []string{"/riverui/", "/riverui/api/jobs?state=completed&limit=5"} {
		if c := getAt(t, addr, path, "ada", pass); c != http.StatusOK {
			t.Fatalf("%s as admin: %d", path, c)
		}
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if log := d.stderr.String(); strings.Contains(log, pass) || !strings.Contains(log, "console serving") {
		t.Fatalf("log:\n%s", log)
	}
}

// getAt GETs path on addr as user ("bearer" with a token, "" for nobody)
// and returns the status.
func getAt(t *testing.T, addr, path, user, secret string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	switch user {
	case "":
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+secret)
	default:
		req.SetBasicAuth(user, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The console listener's limits, the request deadline and the pool are the
// numbers docs/operations.md's "Limits and failures" table states.
func TestConsoleLimitsAreTheDocumentedOnes(t *testing.T) {
	t.Parallel()
	if consoleReadHeaderTimeout != 5*time.Second || consoleMaxHeaderBytes != 64<<10 || consoleWriteTimeout != 30*time.Second ||
		consoleIdleTimeout != 60*time.Second || opsReadTimeout != 10*time.Second {
		t.Errorf("console listener: header %s / %d bytes, write %s, idle %s, read %s", consoleReadHeaderTimeout,
			consoleMaxHeaderBytes, consoleWriteTimeout, consoleIdleTimeout, opsReadTimeout)
	}
	if console.DefaultRequestTimeout != 10*time.Second || console.PoolSize != 3 {
		t.Errorf("request deadline %s, pool %d", console.DefaultRequestTimeout, console.PoolSize)
	}
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| request headers | read within 5 s, at most 64 KiB | `consoleReadHeaderTimeout`, `consoleMaxHeaderBytes`",
		"| whole request | read within `opsReadTimeout` (10 s)",
		"| answer | written within 30 s; idle connections closed after 60 s | `consoleWriteTimeout`, `consoleIdleTimeout` |",
		"| action body (form or JSON) | at most 1 MiB | `maxForm` |",
		"| one request's work | 10 s, then 503 \"database unavailable\" | `console.DefaultRequestTimeout` |",
		"| the console's own pool | 3 connections (apart from the dispatcher's), `statement_timeout` 10 s | `console.PoolSize`",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("docs/operations.md does not say %q", want)
		}
	}
}
