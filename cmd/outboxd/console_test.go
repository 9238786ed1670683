package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
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
	_, _ = f.WriteString("console:\n  listen: " + addr + "\n  users:\n    ada:\n      role: admin\n      password_env: OUTBOXD_TEST_CONSOLE_PW\n")
	f.Close()
	d := startDaemonEnv(t, []string{"OUTBOXD_TEST_CONSOLE_PW=" + pass}, config, "--log-level", "debug")
	d.waitReady(t)
	get := func(user, pw string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/destinations", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("", ""); c != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d", c)
	}
	if c := get("ada", "wrong"); c != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", c)
	}
	if c := get("ada", pass); c != http.StatusOK {
		t.Fatalf("with the password: %d", c)
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if log := d.stderr.String(); strings.Contains(log, pass) || !strings.Contains(log, "console serving") {
		t.Fatalf("log:\n%s", log)
	}
}
