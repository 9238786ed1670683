package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/outbox"
)

// requeue and purge both need a filter or --all, print how many rows they
// change, and change nothing with --dry-run.
func TestRequeueAndPurgeNeedAFilterAndDryRun(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: []string{"crm", "crm", "mail"}[i], Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead', attempts = 1, last_error = 'HTTP 400 Bad Request'`); err != nil {
		t.Fatal(err)
	}
	db := []string{"DATABASE_URL=" + b.url}
	refused := func(action string) string {
		return fmt.Sprintf("outboxd outbox: %s changes every dead letter it matches: give a filter, or --all", action)
	}
	const both, empty = "outboxd outbox: --all means every dead letter: give it without filters, or the filters without it",
		"outboxd outbox: --since must be before --until"
	for _, tc := range []struct {
		args   []string
		code   int
		out    string
		status map[string]int
		err    string // the first line of stderr, for exit 2
	}{
		{[]string{"outbox", "requeue"}, 2, "", map[string]int{"dead": 3}, refused("requeue")},
		{[]string{"outbox", "purge"}, 2, "", map[string]int{"dead": 3}, refused("purge")},
		// Ambiguous or empty selections are refused, not narrowed.
		{[]string{"outbox", "purge", "--all", "--destination", "crm"}, 2, "", map[string]int{"dead": 3}, both},
		{[]string{"outbox", "requeue", "--since", "2h", "--until", "3h"}, 2, "", map[string]int{"dead": 3}, empty},
		{[]string{"outbox", "dead", "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}, 2, "", map[string]int{"dead": 3}, empty},
		{[]string{"outbox", "requeue", "--destination", "crm", "--dry-run"}, 0, "would have requeued 2 (dry run: nothing changed)\n", map[string]int{"dead": 3}, ""},
		{[]string{"outbox", "purge", "--all", "--dry-run"}, 0, "would have purged 3 (dry run: nothing changed)\n", map[string]int{"dead": 3}, ""},
		{[]string{"outbox", "requeue", "--destination", "crm"}, 0, "requeued 2\n", map[string]int{"dead": 1, "pending": 2}, ""},
		{[]string{"outbox", "requeue", "--all"}, 0, "requeued 1\n", map[string]int{"pending": 3}, ""},
		{[]string{"outbox", "purge", "--all"}, 0, "purged 0\n", map[string]int{"pending": 3}, ""},
	} {
		r := outboxd(t, db, tc.args...)
		if r.code != tc.code || r.stdout != tc.out {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.out)
		}
		if tc.code == 2 && firstLine(r.stderr) != tc.err {
			t.Errorf("%v: stderr %q", tc.args, r.stderr)
		}
		if s := b.status(t); fmt.Sprint(s) != fmt.Sprint(tc.status) {
			t.Errorf("%v: statuses %v, want %v", tc.args, s, tc.status)
		}
	}
}

// A destination filter that matches nothing and names no destination a
// dispatcher has served (a typo: "requeued 0", exit 0, looked clean) gets a
// note on stderr naming the served ones; a served one that matches nothing
// does not.
func TestAFilterOnAnUnservedDestinationSaysSo(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	if _, err := b.pool.Exec(context.Background(), `INSERT INTO outboxd.outbox_lanes (destination, lane) VALUES ('crm', 0), ('mail', 0)`); err != nil {
		t.Fatal(err)
	}
	db := []string{"DATABASE_URL=" + b.url}
	const note = `note: no dispatcher has served a destination named "crmm" (served: crm, mail)`
	for _, args := range [][]string{{"requeue"}, {"purge"}, {"dead"}, {"requeue", "--dry-run"}} {
		r := outboxd(t, db, append(append([]string{"outbox"}, args...), "--destination", "crmm")...)
		if r.code != 0 || firstLine(r.stderr) != note {
			t.Errorf("%v --destination crmm: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if r := outboxd(t, db, append(append([]string{"outbox"}, args...), "--destination", "crm")...); r.code != 0 || r.stderr != "" {
			t.Errorf("%v --destination crm: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// send refuses invalid JSON sent as JSON and an empty payload, unless told.
func TestSendChecksThePayload(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	db := []string{"DATABASE_URL=" + b.url}
	for _, tc := range []struct {
		stdin string
		args  []string
		code  int
		first string
	}{
		{"{not json", nil, 2, "outboxd send: the payload is not valid JSON (at byte 2: invalid character 'n' looking for beginning of object key string); for another format pass --header 'Content-Type: ...'"},
		{"", nil, 2, "outboxd send: empty payload on standard input (pass --allow-empty to send one)"},
		// json.Valid lets it through (a trial's was sent as application/json).
		{"{\"a\":\"\xff\xfe\"}", nil, 2, "outboxd send: the payload is not valid JSON (it is not UTF-8); for another format pass --header 'Content-Type: ...'"},
		{"{not json", []string{"--header", "Content-Type: application/cloudevents+json"}, 2, "outboxd send: the payload is not valid JSON (at byte 2: invalid character 'n' looking for beginning of object key string); for another format pass --header 'Content-Type: ...'"},
		{"", []string{"--allow-empty", "--header", "Content-Type: text/plain"}, 0, ""},
		{"plain words", []string{"--header", "Content-Type: text/plain; charset=utf-8"}, 0, ""},
		{`{"ok":true}`, nil, 0, ""},
		// What Enqueue refuses is a usage mistake too (exit 2), its value
		// never quoted.
		{`{}`, []string{"--idempotency-key", strings.Repeat("k", 2001)}, 2, "outboxd send: invalid message: idempotency key is 2001 bytes, at most 2000"},
		// Refused after reading one byte past the bound, not the whole of
		// it (a trial's 300 MB send peaked at 934 MB, then held a
		// dispatcher at 657 MB).
		{strings.Repeat("a", 1<<20+1), []string{"--header", "Content-Type: text/plain"}, 2, "outboxd send: the payload is over 1048576 bytes (1 MiB), the most a message may carry"},
	} {
		r := outboxdIn(t, db, tc.stdin, append([]string{"send", "--destination", "crm"}, tc.args...)...)
		// A success may carry a warning (no dispatcher serves crm); a
		// refusal is the one line we want.
		if r.code != tc.code || tc.code != 0 && firstLine(r.stderr) != tc.first {
			t.Errorf("%q %v: exit %d, stderr %q; want exit %d and %q", tc.stdin, tc.args, r.code, r.stderr, tc.code, tc.first)
		}
		if tc.code == 0 && !strings.HasPrefix(r.stdout, "enqueued id=") {
			t.Errorf("%q %v: stdout %q", tc.stdin, tc.args, r.stdout)
		}
	}
	if s := b.status(t); s["pending"] != 3 {
		t.Fatalf("statuses %v, want the 3 accepted payloads pending", s)
	}
}

// send refuses a header that no attempt could send (it would be retried
// until the message died), and never echoes a header's value: it may be a
// credential, in whatever form.
func TestSendRefusesUnsendableHeaders(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	db := []string{"DATABASE_URL=" + b.url}
	for _, tc := range []struct{ header, first string }{
		{"Authorization: Bearer s3cr3t\x1b", `outboxd send: --header "Authorization: ...": header Authorization: the value holds a control character (a line break?)`},
		{"Bad Name: s3cr3t", `outboxd send: --header "Bad Name: ...": header name "Bad Name" is not a token (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`},
		{"Authorization s3cr3t", `outboxd send: --header (value not shown: no 'Name:' in it): want 'Name: value'`},
		// Replaced on every attempt: two sends with it reached a trial's
		// sink twice, under two keys.
		{"idempotency-key: s3cr3t", `outboxd send: --header "idempotency-key: ...": header Idempotency-Key is the message's idempotency key, sent by every destination: set IdempotencyKey (outboxd send --idempotency-key), not a header`},
		// Set by the HTTP destination itself: a trial's were stored, then
		// replaced without a word.
		{"host: evil.s3cr3t", `outboxd send: --header "host: ...": header Host is set on every request from the URL's host (the HTTP destination's; a value given here would not be sent)`},
		{"Content-Length: 5", `outboxd send: --header "Content-Length: ...": header Content-Length is set on every request from the payload's length (the HTTP destination's; a value given here would not be sent)`},
		{"Transfer-Encoding: chunked", `outboxd send: --header "Transfer-Encoding: ...": header Transfer-Encoding is set on every request from the HTTP client (the HTTP destination's; a value given here would not be sent)`},
		{"webhook-id: x", `outboxd send: --header "webhook-id: ...": header Webhook-Id is set on every request from the message's idempotency key (the HTTP destination's; a value given here would not be sent)`},
	} {
		r := outboxdIn(t, db, `{}`, "send", "--destination", "crm", "--header", tc.header)
		if r.code != 2 || firstLine(r.stderr) != tc.first || strings.Contains(r.stderr+r.stdout, "s3cr3t") {
			t.Errorf("--header %q: exit %d, stderr %q; want exit 2 and %q", tc.header, r.code, r.stderr, tc.first)
		}
	}
	if s := b.status(t); len(s) != 0 {
		t.Fatalf("statuses %v: a refused send stored a message", s)
	}
}

// outbox show prints what is stored: the payload (indented, capped), the
// headers sorted, each attempt's response body, and a next attempt only for
// a pending message.
func TestOutboxShowPrintsWhatIsStored(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	big := `{"blob":"` + strings.Repeat("x", 5000) + `"}`
	e, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(`{"deal":42,"stage":"won"}`),
		Headers: map[string][]string{"X-Zeta": {"z"}, "X-Alpha": {"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	large, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(big), OrderingKey: "deal-42"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
		VALUES ($1, 1, now(), 12, 'dead', 422, 'HTTP 422 Unprocessable Entity', '{"error":"stage unknown"}', 'test')`, e.ID); err != nil {
		t.Fatalf("insert attempt: %v", err)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead', attempts = 1, last_error = 'HTTP 422 Unprocessable Entity' WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	db := []string{"DATABASE_URL=" + b.url}
	r := outboxd(t, db, "outbox", "show", e.ID.String())
	for _, want := range []string{
		"status           dead\n",
		"ordering key     (none: unordered)\n",
		"header           X-Alpha: a\nheader           X-Zeta: z\n",
		"payload\n    {\n      \"deal\": 42,\n      \"stage\": \"won\"\n    }\n",
		"response body of attempt 1\n    {\n      \"error\": \"stage unknown\"\n    }\n",
	} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("show: want %q in:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	if strings.Contains(r.stdout, "\nseq ") {
		t.Errorf("an unkeyed message shows a seq:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "next attempt") {
		t.Errorf("a dead message shows a next attempt:\n%s", r.stdout)
	}
	r = outboxd(t, db, "outbox", "show", large.ID.String())
	if r.code != 0 || !strings.Contains(r.stdout, "next attempt") || !strings.Contains(r.stdout, "... (") || len(r.stdout) > 6000 ||
		!strings.Contains(r.stdout, "ordering key     deal-42\nseq              1\n") {
		t.Errorf("show of a pending keyed 5 kB payload: want its key and seq, a next attempt and a capped payload:\n%s", r.stdout)
	}
}

// Reading the payload from a terminal, send says so (a bare "outboxd send"
// otherwise looks hung). script(1) gives the process a terminal.
func TestSendSaysItReadsFromTheTerminal(t *testing.T) {
	t.Parallel()
	// script(1) is in bsdutils, an essential Debian package: never skip.
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("needs script(1) (Debian's bsdutils) to run outboxd on a terminal: apt-get install bsdutils")
	}
	b := newServeBundle(t)
	line := fmt.Sprintf("%q send --destination crm --database-url %q", os.Args[0], b.url)
	cmd := exec.Command(script, "-qec", line, os.DevNull)
	cmd.Env = append(os.Environ(), "OUTBOXD_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader("{\"a\":1}\n\x04") // Ctrl-D ends the terminal's input
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "outboxd send: reading the payload from the terminal; end it with Ctrl-D") ||
		!strings.Contains(string(out), "enqueued id=") {
		t.Fatalf("%v:\n%s", err, out)
	}
	// Without a terminal, nothing is said.
	r := outboxdIn(t, []string{"DATABASE_URL=" + b.url}, `{"a":2}`, "send", "--destination", "crm")
	if r.code != 0 || strings.Contains(r.stderr, "terminal") {
		t.Fatalf("from a pipe: %+v", r)
	}
	// Unkeyed: no sequence number (it said seq=0); keyed: its number.
	if !strings.HasPrefix(r.stdout, "enqueued id=") || strings.Contains(r.stdout, "seq=") {
		t.Fatalf("unkeyed send printed %q", r.stdout)
	}
	r = outboxdIn(t, []string{"DATABASE_URL=" + b.url}, `{"a":3}`, "send", "--destination", "crm", "--ordering-key", "deal-1")
	if r.code != 0 || !strings.HasSuffix(r.stdout, " seq=1\n") {
		t.Fatalf("keyed send printed %+v", r)
	}
}
