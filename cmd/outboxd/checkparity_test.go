package main

import (
	"strings"
	"testing"
)

// serve --check refuses every configuration that serve refuses, with the
// line of the value at fault; bare --check needs no database.
func TestServeCheckRefusesWhatServeRefuses(t *testing.T) {
	t.Parallel()
	const dest = "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n"
	for _, tc := range []struct {
		name, body, first string
	}{
		{"lease_ttl below the default interval", "dispatcher:\n  lease_ttl: 500ms\n" + dest, "line 2: dispatcher.acquire_interval (default 1s) must be shorter than dispatcher.lease_ttl (500ms)"},
		{"interval above the default ttl", "dispatcher:\n  acquire_interval: 20s\n" + dest, "line 2: dispatcher.acquire_interval (20s) must be shorter than dispatcher.lease_ttl (default 10s)"},
		{"listen", "listen: nowhere\n" + dest, `line 1: listen: "nowhere" is not host:port (for example 127.0.0.1:9400 or :9400)`},
		// A host no listener can take passed --check, then serve failed
		// to bind (a trial): an IPv4 address out of range, a name with a
		// space, an all-numeric top label.
		// Past int4 every claim failed while /readyz said ready (a trial).
		{"per_key_batch past int4", "dispatcher:\n  per_key_batch: 2147483648\n" + dest, "line 2: dispatcher.per_key_batch: 2147483648 is over the most, 2147483647"},
		{"batch_size past int4", "dispatcher:\n  batch_size: 9999999999\n" + dest, "line 2: dispatcher.batch_size: 9999999999 is over the most, 2147483647"},
		{"duty above 1", "maintenance:\n  duty: 1.5\n" + dest, "line 2: maintenance.duty: 1.5 is not between 0 and 1"},
		{"negative duty", "maintenance:\n  duty: -0.1\n" + dest, "line 2: maintenance.duty: -0.1 is not between 0 and 1"},
		// The YAML parser names no line for these (a trial's).
		{"control character", dest + "    headers:\n      X-A: a\x01b\n", "line 5: control characters are not allowed"},
		{"invalid UTF-8", dest + "    type: http\xff\n", "line 4: invalid leading UTF-8 octet"},
		{"C1 control", dest + "    headers:\n      X-A: a\u0090b\n", "line 5: control characters are not allowed"},
		{"listen IPv4 with a zone", "listen: 127.0.0.1%lo:80\n" + dest, `line 1: listen: "127.0.0.1%lo:80" is not host:port (for example 127.0.0.1:9400 or :9400)`},
		{"listen out of range", "listen: 256.1.1.1:80\n" + dest, `line 1: listen: "256.1.1.1:80" is not host:port (for example 127.0.0.1:9400 or :9400)`},
		{"listen host with a space", "listen: \"local host:80\"\n" + dest, `line 1: listen: "local host:80" is not host:port (for example 127.0.0.1:9400 or :9400)`},
		{"listen numeric name", "listen: 10.0.0:80\n" + dest, `line 1: listen: "10.0.0:80" is not host:port (for example 127.0.0.1:9400 or :9400)`},
		{"header name", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n    headers:\n      Bad Header: x\n", `line 5: destinations.a.headers: "Bad Header" is not a valid header name`},
		{"max below the default base", "retry:\n  max: 500ms\n" + dest, "line 2: retry.max (500ms) must not be shorter than retry.base (default 1s)"},
		{"destination max below global base", "retry:\n  base: 5s\ndestinations:\n  a:\n    url: http://127.0.0.1:1/x\n    retry:\n      max: 2s\n", "line 7: destinations.a.retry.max (2s) must not be shorter than destinations.a.retry.base (5s, from retry)"},
		{"empty destination name", "destinations:\n  \"\":\n    url: http://127.0.0.1:1/x\n", "line 2: destinations: a destination needs a name"},
		{"nats with an http url", "destinations:\n  a:\n    type: nats\n    url: http://127.0.0.1:4222\n", "line 4: destinations.a.url: want a nats://, tls://, ws:// or wss:// URL, got http://127.0.0.1:4222"},
		{"second document", dest + "---\nschema: other\n", "line 5: a second YAML document (after ---): put everything in one"},
		{"negative with line", "retry:\n  max_attempts: -1\n" + dest, "line 2: retry.max_attempts: must not be negative"},
		// Nanoseconds passed --check, then serve spun a core and never
		// turned ready (a trial).
		{"lease of nanoseconds", "dispatcher:\n  lease_ttl: 2ns\n  acquire_interval: 1ns\n" + dest, "line 2: dispatcher.lease_ttl: 2ns is below the least, 500ms"},
		{"acquire of a nanosecond", "dispatcher:\n  acquire_interval: 1ns\n" + dest, "line 2: dispatcher.acquire_interval: 1ns is below the least, 10ms"},
		{"sweep of 9ms", "dispatcher:\n  sweep_interval: 9ms\n" + dest, "line 2: dispatcher.sweep_interval: 9ms is below the least, 10ms"},
		{"maintenance every microsecond", "maintenance:\n  interval: 1us\n" + dest, "line 2: maintenance.interval: 1µs is below the least, 10ms"},
		// The pool's settings in the URL passed --check, then serve
		// refused them (an operator's trial).
		{"pool_max_conns not a number", "database_url: postgres://u:pw@h/db?pool_max_conns=x\n" + dest, "line 1: database_url: invalid URL: cannot parse pool_max_conns: want a whole number"},
		{"pool_max_conns out of range", "database_url: postgres://u:pw@h/db?pool_max_conns=99999999999\n" + dest, "line 1: database_url: invalid URL: cannot parse pool_max_conns: out of range"},
		{"pool_health_check_period zero", "database_url: postgres://u:pw@h/db?pool_health_check_period=0s\n" + dest, "line 1: database_url: invalid URL: pool_health_check_period must be more than 0"},
		{"pool_max_conns zero", "database_url: postgres://u:pw@h/db?pool_max_conns=0\n" + dest, "line 1: database_url: invalid URL: pool_max_conns too small"},
		{"pool_max_conn_lifetime", "database_url: postgres://u:pw@h/db?pool_max_conn_lifetime=soon\n" + dest, "line 1: database_url: invalid URL: cannot parse pool_max_conn_lifetime: want a duration such as 30s, 5m or 2h"},
	} {
		path := writeFile(t, "outboxd.yaml", tc.body)
		r := outboxd(t, []string{"DATABASE_URL="}, "serve", "--config", path, "--check")
		want := "outboxd serve: config " + path + ": " + tc.first
		if r.code != 2 || firstLine(r.stderr) != want {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", tc.name, r.code, r.stderr, want)
		}
	}
	// Bare --check reads no database URL: it connects nowhere.
	good := writeFile(t, "good.yaml", dest)
	r := outboxd(t, []string{"DATABASE_URL=", "OUTBOXD_DATABASE_URL="}, "serve", "--config", good, "--check")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "configuration OK") {
		t.Errorf("bare --check without a database URL: %+v", r)
	}
	r = outboxd(t, nil, "serve", "--config", good, "--check", "--listen", "nowhere")
	if want := `outboxd serve: --listen "nowhere": not host:port (for example 127.0.0.1:9400 or :9400)`; r.code != 2 || firstLine(r.stderr) != want {
		t.Errorf("--listen nowhere: %+v", r)
	}
	r = outboxd(t, nil, "serve", "--config", good, "--check", "--listen", "256.1.1.1:80")
	if want := `outboxd serve: --listen "256.1.1.1:80": not host:port (for example 127.0.0.1:9400 or :9400)`; r.code != 2 || firstLine(r.stderr) != want {
		t.Errorf("--listen 256.1.1.1:80: %+v", r)
	}
	// What a listener takes still passes: a name, IPv6, a zone, no host.
	for _, ok := range []string{"localhost:0", "[::1]:0", "[fe80::1%lo]:0", ":0", "0.0.0.0:0", "metrics-host.internal:9400"} {
		if r := outboxd(t, []string{"DATABASE_URL=", "OUTBOXD_DATABASE_URL="}, "serve", "--config", good, "--check", "--listen", ok); r.code != 0 {
			t.Errorf("--listen %s: %+v", ok, r)
		}
	}
}

// A value that came from the environment (${VAR} or OUTBOXD_*) is never
// echoed in an error; the variable or the file's key is named instead.
func TestEnvValuesNotEchoed(t *testing.T) {
	t.Parallel()
	const dest = "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n"
	const secret = "EnvSecretXyz"
	env := []string{"ENV_SECRET=" + secret, "DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}
	for _, tc := range []struct {
		name  string
		env   []string
		body  string
		first string // after "outboxd serve: "
	}{
		{"log_level", nil, "log_level: ${ENV_SECRET}\n" + dest, `config FILE: line 1: log_level: the value of "${ENV_SECRET}" is not a log level (want debug, info, warn or error)`},
		{"type", nil, "destinations:\n  a:\n    type: ${ENV_SECRET}\n", `config FILE: line 3: destinations.a.type: the value of "${ENV_SECRET}" is not a destination type (want http or nats)`},
		{"schema", nil, "schema: ${ENV_SECRET}\n" + dest, "config FILE: line 1: schema: invalid schema name: use lower-case letters, digits and underscores, starting with a letter or underscore"},
		{"listen", nil, "listen: ${ENV_SECRET}\n" + dest, `config FILE: line 1: listen: the value of "${ENV_SECRET}" is not host:port (for example 127.0.0.1:9400 or :9400)`},
		{"OUTBOXD_LOG_LEVEL", []string{"OUTBOXD_LOG_LEVEL=" + secret}, dest, "OUTBOXD_LOG_LEVEL: not a log level (want debug, info, warn or error)"},
		{"OUTBOXD_LOG_FORMAT", []string{"OUTBOXD_LOG_FORMAT=" + secret}, dest, "OUTBOXD_LOG_FORMAT: not a log format (want json or text)"},
		{"OUTBOXD_SCHEMA", []string{"OUTBOXD_SCHEMA=" + secret}, dest, "OUTBOXD_SCHEMA: invalid schema name: use lower-case letters, digits and underscores, starting with a letter or underscore"},
		{"OUTBOXD_LISTEN", []string{"OUTBOXD_LISTEN=" + secret}, dest, "OUTBOXD_LISTEN: not host:port (for example 127.0.0.1:9400 or :9400)"},
		{"database_url", nil, "database_url: postgres://u@h:notaport/x\n" + dest, "config FILE: line 1: database_url: invalid URL: "},
	} {
		path := writeFile(t, "outboxd.yaml", tc.body)
		r := outboxd(t, append(append([]string{}, env...), tc.env...), "serve", "--config", path, "--check")
		want := "outboxd serve: " + strings.ReplaceAll(tc.first, "FILE", path)
		if r.code != 2 || !strings.HasPrefix(firstLine(r.stderr), want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", tc.name, r.code, r.stderr, want)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%s: the environment's value echoed: %q", tc.name, r.stderr)
		}
	}
}
