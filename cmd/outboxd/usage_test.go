package main

import (
	"strings"
	"testing"
)

// Invalid values exit 2 with the error and a hint to --help, never reach
// a connection attempt.
func TestInvalidValuesAreUsageErrors(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "c.yaml", "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n")
	db := "postgres://postgres@127.0.0.1:1/x"
	for _, tc := range []struct {
		args  []string
		stdin string
		first string
		hint  string
	}{
		{[]string{"migrate", "up", "--database-url", db, "--connect-timeout", "-1s"}, "", `outboxd migrate: --connect-timeout "-1s": must be more than 0`, "outboxd migrate up --help"},
		{[]string{"outbox", "dead", "--database-url", db, "--connect-timeout", "0"}, "", `outboxd outbox: --connect-timeout "0": must be more than 0`, "outboxd outbox dead --help"},
		{[]string{"verify", "--provider", "standard-webhooks", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--tolerance", "-5s"}, "{}", `outboxd verify: --tolerance "-5s": must not be negative`, "outboxd verify --help"},
		{[]string{"serve", "--config", cfg, "--check", "--log-level", "verbose"}, "", `outboxd serve: --log-level "verbose": not a log level (want debug, info, warn or error)`, "outboxd serve --help"},
		{[]string{"serve", "--config", cfg, "--check", "--log-format", "xml"}, "", `outboxd serve: --log-format "xml": not a log format (want json or text)`, "outboxd serve --help"},
		{[]string{"migrate", "up", "--database-url", db + "?connect_timeout=abc"}, "", "outboxd migrate: invalid --database-url: invalid connect_timeout: want a whole number of seconds", "outboxd migrate up --help"},
		{[]string{"send", "--destination", "a", "--database-url", db}, "{not json", "outboxd send: the payload is not valid JSON", "outboxd send --help"},
		{[]string{"send", "--destination", "a", "--database-url", db}, "", "outboxd send: empty payload on standard input (pass --allow-empty to send one)", "outboxd send --help"},
	} {
		r := outboxdIn(t, nil, tc.stdin, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || !strings.HasPrefix(lines[0], tc.first) || len(lines) != 2 || lines[1] != "Run '"+tc.hint+"' for usage." {
			t.Errorf("%v: exit %d, stderr %q; want exit 2, %q and the hint %q", tc.args, r.code, r.stderr, tc.first, tc.hint)
		}
	}
}
