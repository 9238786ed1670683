package main

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// A config mistake is refused at load, exit 2, with the file, the line and
// the field's path, in words: a typo suggests the nearest key; no Go type
// names.
func TestConfigMistakes(t *testing.T) {
	t.Parallel()
	const dest = "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n"
	for _, tc := range []struct {
		name, body, first string
	}{
		{"typo", "destinations:\n  a:\n    urll: http://x\n", "line 3: destinations.a.urll: unknown setting (did you mean url?)"},
		{"top-level typo", "databse_url: postgres://x@y/z\n" + dest, "line 1: databse_url: unknown setting (did you mean database_url?)"},
		{"dispatcher typo", "dispatcher:\n  lease_tll: 5s\n" + dest, "line 2: dispatcher.lease_tll: unknown setting (did you mean lease_ttl?)"},
		{"far from anything", "flavour: blue\n" + dest, "line 1: flavour: unknown setting"},
		{"int duration", "destinations:\n  a:\n    url: http://x\n    timeout: 5\n", `line 4: destinations.a.timeout: "5" is not a duration (want a number and a unit: 500ms, 10s, 5m, 72h)`},
		{"word for int", "retry:\n  max_attempts: lots\n" + dest, `line 2: retry.max_attempts: "lots" is not a whole number`},
		{"mapping for value", "schema:\n  name: x\n" + dest, "line 2: schema: want a single value, not a list or mapping"},
		{"negative attempts", "retry:\n  max_attempts: -1\n" + dest, "line 2: retry.max_attempts: must not be negative"},
		{"negative base", "retry:\n  base: -1s\n" + dest, "line 2: retry.base: must not be negative"},
		{"negative batch bytes", "dispatcher:\n  batch_bytes: -1\n" + dest, "line 2: dispatcher.batch_bytes: must not be negative"},
		// An int64, which the whole-number check missed: yaml's own error
		// (quoting a value from the environment), a fraction cut to 1.
		{"fraction of batch bytes", "dispatcher:\n  batch_bytes: 1.5\n" + dest, `line 2: dispatcher.batch_bytes: "1.5" is not a whole number`},
		{"word for batch bytes", "dispatcher:\n  batch_bytes: 1MiB\n" + dest, `line 2: dispatcher.batch_bytes: "1MiB" is not a whole number`},
		{"max below base", "retry:\n  base: 10s\n  max: 1s\n" + dest, "line 3: retry.max (1s) must not be shorter than retry.base (10s)"},
		{"negative timeout", "destinations:\n  a:\n    url: http://x\n    timeout: -2s\n", "line 4: destinations.a.timeout: must not be negative"},
		{"negative rate", "destinations:\n  a:\n    url: http://x\n    rate: -5\n", "line 4: destinations.a.rate: must not be negative"},
		{"destination retry", "destinations:\n  a:\n    url: http://x\n    retry:\n      max: -1m\n", "line 5: destinations.a.retry.max: must not be negative"},
		{"bad url", "destinations:\n  a:\n    url: ftp://u:pw@files.example.com/drop\n", "line 3: destinations.a.url: want an http:// or https:// URL, got ftp://xxxxx@files.example.com/..."},
		{"no url", "destinations:\n  a:\n    timeout: 1s\n", "line 2: destinations.a.url: required for an http destination"},
		{"unknown type", "destinations:\n  a:\n    type: carrier-pigeon\n", `line 3: destinations.a.type: "carrier-pigeon" is not a destination type (want http or nats)`},
		{"acquire above ttl", "dispatcher:\n  lease_ttl: 1s\n  acquire_interval: 2s\n" + dest, "line 3: dispatcher.acquire_interval (2s) must be shorter than dispatcher.lease_ttl (1s)"},
		{"bad log level", "log_level: loud\n" + dest, `line 1: log_level: "loud" is not a log level (want debug, info, warn or error)`},
		{"unset variable", "destinations:\n  a:\n    url: http://x\n    headers:\n      Authorization: Bearer ${OUTBOXD_TEST_UNSET_TOKEN}\n", "line 5: destinations.a.headers.Authorization: environment variable OUTBOXD_TEST_UNSET_TOKEN is not set"},
		{"duplicate key", "destinations:\n  a:\n    url: http://x\n    url: http://y\n", `line 4: mapping key "url" already defined at line 3`},
		// Replaced on every request: the configured value never reached
		// the destination (a trial's).
		{"header the destination sets", "destinations:\n  a:\n    url: http://x\n    headers:\n      idempotency-key: fixed\n", "line 5: destinations.a.headers.idempotency-key: header Idempotency-Key is set on every request from the message's idempotency key; a configured value would be replaced"},
		{"header net/http sets", "destinations:\n  a:\n    url: http://x\n    headers:\n      Host: other.example\n", "line 5: destinations.a.headers.Host: header Host is set on every request from the URL's host; a configured value would be replaced"},
		{"not yaml", "destinations: [\n", "line 1: did not find expected node content"},
		// Found when the destination is built, named like the rest (they
		// had no file, line or path).
		{"bad secret", "destinations:\n  a:\n    url: http://x\n    secret: short1\n", "line 2: destinations.a: secret is not a whsec_ base64 secret: illegal base64 data at input byte 4"},
		{"unset secret_env", "destinations:\n  a:\n    url: http://x\n    secret_env: OUTBOXD_TEST_NOPE_SECRET\n", "line 4: destinations.a.secret_env: OUTBOXD_TEST_NOPE_SECRET is not set"},
	} {
		path := writeFile(t, "outboxd.yaml", tc.body)
		r := outboxd(t, []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}, "serve", "--config", path, "--check")
		want := "outboxd serve: config " + path + ": " + tc.first
		if r.code != 2 || firstLine(r.stderr) != want {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", tc.name, r.code, r.stderr, want)
		}
		for _, goType := range []string{"main.", "time.Duration", "!!int", "!!str", "unmarshal"} {
			if strings.Contains(r.stderr, goType) {
				t.Errorf("%s: Go's words in %q", tc.name, r.stderr)
			}
		}
	}
}

// ${VAR} is expanded in every value, an unset variable is an error naming
// it, and $$ is a literal dollar.
func TestConfigExpandsVariables(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	b := newServeBundle(t)
	path := writeFile(t, "outboxd.yaml", `database_url: ${TEST_DB_URL}
schema: ${TEST_SCHEMA}
destinations:
  a:
    url: http://127.0.0.1:${TEST_PORT}/hook?price=$$5
    timeout: ${TEST_TIMEOUT}
`)
	env := []string{"TEST_DB_URL=" + b.url, "TEST_SCHEMA=outboxd", "TEST_PORT=" + port, "TEST_TIMEOUT=3s"}
	r := outboxd(t, env, "serve", "--config", path, "--check=connect")
	want := "database: connected, schema outboxd migrated\ndestination a: 127.0.0.1:" + port + " reachable\nconfiguration OK: 1 destination(s), schema outboxd, listen 127.0.0.1:9400\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}
	r = outboxd(t, env[1:], "serve", "--config", path, "--check")
	if want := "outboxd serve: config " + path + ": line 1: database_url: environment variable TEST_DB_URL is not set"; r.code != 2 || firstLine(r.stderr) != want {
		t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("OUTBOXD_TEST_TOKEN", "t0k")
	t.Setenv("OUTBOXD_TEST_EMPTY", "")
	for in, want := range map[string]string{
		"Bearer ${OUTBOXD_TEST_TOKEN}":    "Bearer t0k",
		"$$5 and $$${OUTBOXD_TEST_TOKEN}": "$5 and $t0k",
		"x${OUTBOXD_TEST_EMPTY}y":         "xy",
		"$HOME stays":                     "$HOME stays",
		"no dollar":                       "no dollar",
	} {
		if got, err := expandEnv(in); err != nil || got != want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := expandEnv("${OUTBOXD_TEST_NOPE}"); err == nil || err.Error() != "environment variable OUTBOXD_TEST_NOPE is not set" {
		t.Errorf("unset: %v", err)
	}
	if _, err := expandEnv("a${}b"); err == nil || err.Error() != "${} names no variable (write ${NAME}, or $$ for a literal $)" {
		t.Errorf("${}: %v", err)
	}
	if _, err := expandEnv("${OPEN"); err == nil {
		t.Error("unclosed ${ accepted")
	}
}

// serve --check validates and exits; --check=connect also reaches the
// database and each destination's host.
func TestServeCheck(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	good := writeFile(t, "good.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	closed := freeAddr(t)
	unreachable := writeFile(t, "down.yaml", "destinations:\n  a:\n    url: http://"+closed+"/x\n")
	// One down and one up: each gets its line (the check stopped at the
	// first unreachable one).
	both := writeFile(t, "both.yaml", "destinations:\n  a:\n    url: http://"+closed+"/x\n  b:\n    url: "+b.sink.URL()+"\n")
	env := []string{"DATABASE_URL=" + b.url}
	for _, tc := range []struct {
		args  []string
		env   []string
		code  int
		first string
	}{
		{[]string{"--config", good, "--check"}, []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}, 0, "configuration OK: 1 destination(s), schema outboxd, listen 127.0.0.1:9400"},
		{[]string{"--config", good, "--check=connect"}, []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x?connect_timeout=2"}, 1, "outboxd serve: cannot connect to PostgreSQL: 127.0.0.1:1 (127.0.0.1): dial error: dial tcp 127.0.0.1:1: connect: connection refused"},
		{[]string{"--config", unreachable, "--check=connect"}, env, 1, "outboxd serve: destination a: cannot reach " + closed + ": connect: connection refused"},
		{[]string{"--config", good, "--check=connect", "--schema", "elsewhere"}, env, 1, "outboxd serve: schema elsewhere has no outboxd tables: run outboxd migrate up --schema elsewhere"},
		{[]string{"--check"}, env, 2, "outboxd serve: no destinations configured: name at least one under destinations: in the config file"},
		{[]string{"--config", both, "--check=connect"}, env, 1, "outboxd serve: destination a: cannot reach " + closed + ": connect: connection refused"},
	} {
		r := outboxd(t, tc.env, append([]string{"serve"}, tc.args...)...)
		out := r.stdout
		if tc.code != 0 {
			out = r.stderr
		}
		if r.code != tc.code || firstLine(out) != tc.first {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.first)
		}
		if slices.Contains(tc.args, both) && (!strings.Contains(r.stdout, "destination a: cannot reach") || !strings.Contains(r.stdout, "destination b: ") ||
			!strings.Contains(r.stdout, " reachable\n")) {
			t.Errorf("%v: stdout %q; want a line for each destination", tc.args, r.stdout)
		}
	}
}

// docs/configuration.md: each destination's dial gets 5 s at most, all at
// once.
func TestCheckConnectDialBound(t *testing.T) {
	if dialTimeout != 5*time.Second {
		t.Fatalf("dialTimeout %s; docs/configuration.md says 5 s", dialTimeout)
	}
}

// --check=connect tries every destination at once: a NATS list is
// reachable when one of its servers is (the whole list was read as one
// URL, and refused), and two unreachable destinations are both listed,
// the error naming the first and counting the other.
func TestServeCheckConnectTriesEveryDestination(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	closed, other := freeAddr(t), freeAddr(t)
	up := strings.TrimPrefix(b.sink.URL(), "http://") // host:port, a listener
	config := writeFile(t, "many.yaml", "destinations:\n"+
		"  a:\n    url: http://"+closed+"/x\n"+
		"  m:\n    type: nats\n    subject: s\n    url: nats://"+closed+", nats://"+up+"\n"+
		"  z:\n    url: http://"+other+"/x\n")
	r := outboxd(t, []string{"DATABASE_URL=" + b.url}, "serve", "--config", config, "--check=connect")
	want := "outboxd serve: destination a: cannot reach " + closed + ": connect: connection refused (and 1 more destination(s) unreachable, listed on stdout)"
	if r.code != 1 || firstLine(r.stderr) != want {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
	for _, line := range []string{"destination a: cannot reach " + closed, "destination m: " + up + " reachable", "destination z: cannot reach " + other} {
		if !strings.Contains(r.stdout, line+"\n") && !strings.Contains(r.stdout, line+":") {
			t.Errorf("stdout lacks %q:\n%s", line, r.stdout)
		}
	}
}

// Top-level settings: flag, then OUTBOXD_ variable, then file, then default.
func TestSettingsPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "outboxd.yaml", "schema: from_file\nlisten: 127.0.0.1:9500\nlog_level: warn\ndestinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	noFileSchema := writeFile(t, "plain.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	base := []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}
	for _, tc := range []struct {
		env   []string
		args  []string
		code  int
		first string
	}{
		{nil, []string{"--config", noFileSchema}, 0, "configuration OK: 1 destination(s), schema outboxd, listen 127.0.0.1:9400"},
		{[]string{"OUTBOXD_LISTEN=127.0.0.1:9600"}, []string{"--config", file}, 0, "configuration OK: 1 destination(s), schema from_file, listen 127.0.0.1:9600"},
		{[]string{"OUTBOXD_LISTEN=127.0.0.1:9600"}, []string{"--config", file, "--listen", ":9700"}, 0, "configuration OK: 1 destination(s), schema from_file, listen :9700"},
		{nil, []string{"--config", file}, 0, "configuration OK: 1 destination(s), schema from_file, listen 127.0.0.1:9500"},
		{[]string{"OUTBOXD_SCHEMA=from_env"}, []string{"--config", file}, 0, "configuration OK: 1 destination(s), schema from_env, listen 127.0.0.1:9500"},
		{[]string{"OUTBOXD_SCHEMA=from_env"}, []string{"--config", file, "--schema", "from_flag"}, 0, "configuration OK: 1 destination(s), schema from_flag, listen 127.0.0.1:9500"},
		{[]string{"OUTBOXD_LOG_LEVEL=loud"}, []string{"--config", file}, 2, `outboxd serve: OUTBOXD_LOG_LEVEL: not a log level (want debug, info, warn or error)`},
		{[]string{"OUTBOXD_LOG_LEVEL=loud"}, []string{"--config", file, "--log-level", "debug"}, 0, "configuration OK: 1 destination(s), schema from_file, listen 127.0.0.1:9500"},
		{nil, []string{"--config", file, "--log-level", "chatty"}, 2, `outboxd serve: --log-level "chatty": not a log level (want debug, info, warn or error)`},
		{[]string{"OUTBOXD_SCHEMA=Bad-Name"}, []string{"--config", file}, 2, `outboxd serve: OUTBOXD_SCHEMA: invalid schema name: use lower-case letters, digits and underscores, starting with a letter or underscore`},
	} {
		r := outboxd(t, append(append([]string{}, base...), tc.env...), append([]string{"serve", "--check"}, tc.args...)...)
		out := r.stdout
		if tc.code != 0 {
			out = r.stderr
		}
		if r.code != tc.code || firstLine(out) != tc.first {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.env, tc.args, r.code, r.stdout, r.stderr, tc.code, tc.first)
		}
	}
}

// The database URL: --database-url, OUTBOXD_DATABASE_URL, the file, then
// DATABASE_URL. The port each one names shows which was used.
func TestDatabaseURLPrecedence(t *testing.T) {
	t.Parallel()
	pg := func(port string) string { return "postgres://postgres@127.0.0.1:" + port + "/x?connect_timeout=2" }
	file := writeFile(t, "outboxd.yaml", "database_url: "+pg("3")+"\ndestinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	plain := writeFile(t, "plain.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	for _, tc := range []struct {
		env  []string
		args []string
		port string
	}{
		{[]string{"DATABASE_URL=" + pg("4")}, []string{"--config", plain}, "4"},
		{[]string{"DATABASE_URL=" + pg("4")}, []string{"--config", file}, "3"},
		{[]string{"DATABASE_URL=" + pg("4"), "OUTBOXD_DATABASE_URL=" + pg("2")}, []string{"--config", file}, "2"},
		{[]string{"DATABASE_URL=" + pg("4"), "OUTBOXD_DATABASE_URL=" + pg("2")}, []string{"--config", file, "--database-url", pg("1")}, "1"},
	} {
		r := outboxd(t, tc.env, append([]string{"serve", "--check=connect"}, tc.args...)...)
		want := "outboxd serve: cannot connect to PostgreSQL: 127.0.0.1:" + tc.port + " (127.0.0.1): dial error: dial tcp 127.0.0.1:" + tc.port + ": connect: connection refused"
		if r.code != 1 || firstLine(r.stderr) != want {
			t.Errorf("%v %v: exit %d, stderr %q; want %q", tc.env, tc.args, r.code, r.stderr, want)
		}
	}
}

// An alias is expanded once: $$ in an anchored value stays a literal $.
func TestConfigAliasExpandedOnce(t *testing.T) {
	t.Setenv("OUTBOXD_TEST_ALIAS", "leaked")
	path := writeFile(t, "outboxd.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n    headers:\n      A: &tok \"$${OUTBOXD_TEST_ALIAS}\"\n      B: *tok\n")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"A", "B"} {
		if got := cfg.Destinations["a"].Headers[k]; got != "${OUTBOXD_TEST_ALIAS}" {
			t.Errorf("header %s = %q, want ${OUTBOXD_TEST_ALIAS}", k, got)
		}
	}
}
