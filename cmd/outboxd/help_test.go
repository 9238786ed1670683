package main

import (
	"regexp"
	"strings"
	"testing"
)

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Every command and action has its own usage, listing only its flags with
// "--"; --help and -h exit 0 everywhere.
func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args        []string
		usage       string   // first line
		has, hasNot []string // flags listed or not
	}{
		{[]string{"migrate"}, "usage: outboxd migrate <action> [flags]", []string{"--database-url URL", "--schema NAME"}, []string{"--to"}},
		{[]string{"migrate", "up"}, "usage: outboxd migrate up [--to N] [flags]", []string{"--connect-timeout DURATION", "--to VERSION"}, nil},
		{[]string{"migrate", "down"}, "usage: outboxd migrate down [--to N] [flags]", []string{"--to VERSION"}, nil},
		{[]string{"migrate", "status"}, "usage: outboxd migrate status [flags]", nil, []string{"--to"}},
		{[]string{"migrate", "version"}, "usage: outboxd migrate version [flags]", nil, []string{"--to"}},
		{[]string{"outbox"}, "usage: outboxd outbox <action> [flags]", nil, []string{"--all", "--limit"}},
		{[]string{"outbox", "dead"}, "usage: outboxd outbox dead [filters] [--limit N] [--json] [flags]", []string{"--limit N", "--since TIME", "--json"}, []string{"--all", "--dry-run"}},
		{[]string{"outbox", "requeue"}, "usage: outboxd outbox requeue (filters | --all) [--dry-run] [flags]", []string{"--all", "--dry-run", "--id ID"}, []string{"--limit", "--json"}},
		{[]string{"outbox", "purge"}, "usage: outboxd outbox purge (filters | --all) [--dry-run] [flags]", []string{"--all", "--dry-run"}, []string{"--limit"}},
		{[]string{"outbox", "show"}, "usage: outboxd outbox show ID [--json] [flags]", []string{"--json"}, []string{"--all", "--limit", "--since"}},
		{[]string{"outbox", "paused"}, "usage: outboxd outbox paused [--json] [flags]", []string{"--json"}, []string{"--all", "--limit", "--since"}},
		{[]string{"outbox", "resume"}, "usage: outboxd outbox resume NAME [flags]", nil, []string{"--all", "--limit", "--since", "--json"}},
		{[]string{"inbox"}, "usage: outboxd inbox <action> [flags]", nil, []string{"--source"}},
		{[]string{"inbox", "show"}, "usage: outboxd inbox show SOURCE EVENT_ID [--json] [flags]", []string{"--json"}, []string{"--limit", "--source"}},
		{[]string{"inbox", "find"}, "usage: outboxd inbox find NAME=VALUE [--limit N] [--json] [flags]", []string{"--limit N", "--json"}, []string{"--source"}},
		{[]string{"inbox", "failures"}, "usage: outboxd inbox failures [--source S] [--event ID] [--limit N] [--json] [flags]", []string{"--source SOURCE", "--event ID", "--json"}, nil},
		{[]string{"serve"}, "usage: outboxd serve [--config FILE] [flags]", []string{"--config FILE", "--log-level LEVEL", "--check"}, nil},
		{[]string{"send"}, "usage: outboxd send --destination NAME [--type T] [--ordering-key K] [--idempotency-key K] [--header 'Name: value']... < payload", []string{"--allow-empty"}, nil},
		{[]string{"verify"}, "usage: outboxd verify --provider NAME (--secret-env VAR | --secret-file PATH | --secret SECRET) [--header 'Name: value']... [--url URL] [--now UNIX_SECONDS] [--tolerance DURATION] < body", []string{"--secret-env VAR", "--secret-file PATH"}, nil},
		{[]string{"version"}, "usage: outboxd version", nil, []string{"--database-url"}},
	} {
		for _, h := range []string{"--help", "-h"} {
			r := runIn(append(append([]string{}, tc.args...), h)...)
			if r.code != 0 || firstLine(r.stdout) != tc.usage || r.stderr != "" {
				t.Errorf("%v %s: exit %d, first line %q, stderr %q; want exit 0 and %q", tc.args, h, r.code, firstLine(r.stdout), r.stderr, tc.usage)
				continue
			}
			if regexp.MustCompile(`(?m)^\s+-[a-z]`).MatchString(r.stdout) {
				t.Errorf("%v %s: a flag listed with a single dash:\n%s", tc.args, h, r.stdout)
			}
			for _, f := range tc.has {
				if !strings.Contains(r.stdout, "  "+f) {
					t.Errorf("%v %s: %s not listed:\n%s", tc.args, h, f, r.stdout)
				}
			}
			for _, f := range tc.hasNot {
				if strings.Contains(r.stdout, "  "+f+" ") {
					t.Errorf("%v %s: %s listed but not taken:\n%s", tc.args, h, f, r.stdout)
				}
			}
		}
	}
	// The help flag also works after other flags and the action's argument.
	if r := runIn("outbox", "show", "0190a0f4-4b8e-7c3a-9b55-1b8f3f2f2a10", "--schema", "x", "--help"); r.code != 0 || firstLine(r.stdout) != "usage: outboxd outbox show ID [--json] [flags]" {
		t.Errorf("show ID --help: %+v", r)
	}
	if r := runIn("help"); r.code != 0 || !strings.Contains(r.stdout, "version") {
		t.Errorf("help: %+v", r)
	}
}

// A usage mistake exits 2 with one line of error and a hint, never the
// whole usage; invalid values are usage mistakes too.
func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	noDB := []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}
	for _, tc := range []struct {
		args  []string
		first string
		hint  string
	}{
		{[]string{"migrate", "up", "--bogus"}, `outboxd migrate: unknown flag --bogus`, "outboxd migrate up --help"},
		{[]string{"migrate", "--bogus", "up"}, `outboxd migrate: unknown flag --bogus`, "outboxd migrate up --help"},
		{[]string{"migrate", "--bogus"}, `outboxd migrate: unknown flag --bogus`, "outboxd migrate --help"},
		{[]string{"migrate"}, `outboxd migrate: missing action (want up, down, status or version)`, "outboxd migrate --help"},
		{[]string{"migrate", "sideways"}, `outboxd migrate: unknown action "sideways" (want up, down, status or version)`, "outboxd migrate --help"},
		{[]string{"migrate", "status", "--to", "3"}, `outboxd migrate: unknown flag --to`, "outboxd migrate status --help"},
		{[]string{"migrate", "up", "--to", "0"}, `outboxd migrate: --to 0: want a version, 1 or more`, "outboxd migrate up --help"},
		{[]string{"migrate", "up", "--to", "0x10"}, `outboxd migrate: --to "0x10": want a whole number`, "outboxd migrate up --help"},
		{[]string{"migrate", "up", "--to", "17"}, `outboxd migrate: --to 17: no such migration (the latest is 16)`, "outboxd migrate up --help"},
		{[]string{"migrate", "down", "--to", "-5"}, `outboxd migrate: --to -5: want a version, 0 or more`, "outboxd migrate down --help"},
		{[]string{"migrate", "status", "--connect-timeout", "soon"}, `outboxd migrate: --connect-timeout "soon": want a duration such as 30s, 5m or 2h`, "outboxd migrate status --help"},
		{[]string{"outbox", "dead", "--limit", "-5"}, `outboxd outbox: --limit "-5": must be at least 1`, "outboxd outbox dead --help"},
		{[]string{"outbox", "dead", "--limit", "many"}, `outboxd outbox: --limit "many": want a whole number`, "outboxd outbox dead --help"},
		{[]string{"outbox", "resume", "x", "--all"}, `outboxd outbox: unknown flag --all`, "outboxd outbox resume --help"},
		{[]string{"outbox", "dead", "--since", "yesterday"}, `outboxd outbox: --since "yesterday": want RFC 3339 (2026-11-28T12:00:00Z) or a duration ago (2h)`, "outboxd outbox dead --help"},
		{[]string{"outbox", "dead", "--id", "nope"}, `outboxd outbox: --id "nope": not a message id`, "outboxd outbox dead --help"},
		{[]string{"outbox", "show"}, `outboxd outbox: show needs an argument: ID`, "outboxd outbox show --help"},
		{[]string{"outbox", "show", "nope"}, `outboxd outbox: show "nope": not a message id`, "outboxd outbox show --help"},
		{[]string{"outbox", "fly"}, `outboxd outbox: unknown action "fly" (want dead, requeue, purge, show, paused or resume)`, "outboxd outbox --help"},
		{[]string{"inbox", "find", "--limit", "0", "a=b"}, `outboxd inbox: --limit "0": must be at least 1`, "outboxd inbox find --help"},
		{[]string{"inbox", "show", "forms"}, `outboxd inbox: show takes 2 argument(s), got 1`, "outboxd inbox show --help"},
		{[]string{"serve", "--bogus"}, `outboxd serve: unknown flag --bogus`, "outboxd serve --help"},
		{[]string{"serve", "--check=maybe"}, `outboxd serve: --check "maybe": want --check or --check=connect`, "outboxd serve --help"},
		{[]string{"send", "--destination"}, `outboxd send: flag --destination needs a value`, "outboxd send --help"},
		{[]string{"verify", "--provider", "github"}, `outboxd verify: a secret is required: --secret-env VAR, --secret-file PATH or --secret SECRET`, "outboxd verify --help"},
		{[]string{"version", "extra"}, `outboxd version: unexpected argument "extra"`, "outboxd version --help"},
	} {
		r := outboxd(t, noDB, tc.args...)
		want := tc.first + "\nRun '" + tc.hint + "' for usage.\n"
		if r.code != 2 || r.stderr != want || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and stderr %q", tc.args, r.code, r.stdout, r.stderr, want)
		}
	}
}

// outboxd version and --version, and the same in the User-Agent and in
// outboxd_build_info (TestServeEndpointsSendAndMetrics).
func TestVersion(t *testing.T) {
	t.Parallel()
	want := regexp.MustCompile(`^outboxd \S+ \((development build, )?commit \S+, go[0-9.]+\S*\)\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := outboxd(t, nil, args...)
		if r.code != 0 || !want.MatchString(r.stdout) {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
}

// Built without a module version (go build, go test), outboxd is "dev":
// "(devel)" is not a valid User-Agent product token.
func TestVersionDevBuild(t *testing.T) {
	t.Parallel()
	token := regexp.MustCompile("^outboxd/[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	if ua := userAgent(); !token.MatchString(ua) {
		t.Errorf("User-Agent %q is not a product token", ua)
	}
	b := readBuildInfo()
	r := outboxd(t, nil, "version")
	if b.version == "dev" && !strings.HasPrefix(r.stdout, "outboxd dev (development build, commit ") {
		t.Errorf("version of a development build: %q", r.stdout)
	}
}
