package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/outbox"
)

// documentedFields reads docs/operations.md's list of --json fields: the
// line "- KIND: `a`, `b`, ..." for each kind of object.
func documentedFields(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	line := regexp.MustCompile(`(?m)^- \*\*([a-z ]+)\*\* \(--json\): (.*)$`)
	field := regexp.MustCompile("`([a-z_0-9]+)`")
	for _, m := range line.FindAllStringSubmatch(string(raw), -1) {
		for _, f := range field.FindAllStringSubmatch(m[2], -1) {
			out[m[1]] = append(out[m[1]], f[1])
		}
	}
	return out
}

// checkFields compares an object's keys with the documented ones: each
// documented field is there but for the payload's alternatives, of which
// exactly one is, and those the command leaves out.
func checkFields(t *testing.T, kind string, obj map[string]json.RawMessage, documented map[string][]string, leftOut ...string) {
	t.Helper()
	want := documented[kind]
	if len(want) == 0 {
		t.Fatalf("docs/operations.md documents no fields for %s", kind)
	}
	payloads := 0
	for k := range obj {
		if !slices.Contains(want, k) {
			t.Errorf("%s: field %q is not documented", kind, k)
		}
		if strings.HasPrefix(k, "payload") {
			payloads++
		}
	}
	for _, k := range want {
		if _, ok := obj[k]; !ok && !strings.HasPrefix(k, "payload") && !slices.Contains(leftOut, k) {
			t.Errorf("%s: documented field %q missing", kind, k)
		}
	}
	if slices.Contains(want, "payload") && payloads != 1 {
		t.Errorf("%s: want exactly one of payload, payload_text, payload_base64; got %d", kind, payloads)
	}
}

func decodeJSON[T any](t *testing.T, what string, r result) T {
	t.Helper()
	var v T
	if r.code != 0 {
		t.Fatalf("%s: %+v", what, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, r.stdout)
	}
	return v
}

// --json on the list and show commands: documented field names, the
// stored values (payloads as JSON, text or base64), and nothing a
// terminal would act on.
func TestCommandsJSON(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	docs := documentedFields(t)
	const hostile = "\x1b]0;pwned\x07 \u009b2J \u202eevil\x7f"
	// Valid JSON holding DEL, a C1 control and a bidi override as they are
	// (JSON escapes only C0).
	dealJSON, _ := json.Marshal(map[string]any{"deal": 7, "note": hostile})
	jsonMsg, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Type: "deal.won", OrderingKey: "deal-7",
		Payload: dealJSON, Headers: http.Header{"X-Trace": {"t1"}},
		CausedBy: &outbox.EventRef{Source: "forms", EventID: "evt_1"}})
	if err != nil {
		t.Fatal(err)
	}
	textMsg, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(hostile),
		Headers: http.Header{"Content-Type": {"text/plain"}}})
	if err != nil {
		t.Fatal(err)
	}
	binary := []byte{0, 1, 0xff, 0xfe, 'x'}
	binMsg, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: binary,
		Headers: http.Header{"Content-Type": {"application/octet-stream"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead', attempts = 1, last_error = 'HTTP 400', last_status_code = 400 WHERE id <> $1`, jsonMsg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
VALUES ($1, 1, now(), 12.5, 'retry', 503, 'HTTP 503', $2, 'd1')`, jsonMsg.ID, hostile); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_destinations (name, paused, reason, paused_at) VALUES ('gone-api', true, 'HTTP 410', now())`); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	if _, err := in.Record(ctx, b.pool, inbox.Event{Source: "forms", ID: "evt_1", Type: "lead.created",
		Payload: []byte(`{"email":"ada@example.com"}`), Headers: http.Header{"Webhook-Id": {"evt_1"}},
		Refs: map[string]string{"email": "ada@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_failures (source, event_id, kind, reason, status_code, count)
		VALUES ('forms', 'evt_9', 'failed', 'CRM API timed out', 503, 3)`); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		t.Helper()
		r := runIn(append(args, "--json", "--database-url", b.url)...)
		// Nothing a terminal acts on, whatever the stored values hold.
		for _, c := range r.stdout {
			if c < ' ' && c != '\n' || c == 0x7f || c >= 0x80 && c < 0xa0 || c == '\u202e' {
				t.Errorf("%v: character %U in the output", args, c)
			}
		}
		if !utf8.ValidString(r.stdout) {
			t.Errorf("%v: invalid UTF-8 in the output", args)
		}
		return r
	}

	// outbox show: a JSON payload as JSON, the attempts with their bodies.
	shown := decodeJSON[map[string]json.RawMessage](t, "outbox show", run("outbox", "show", jsonMsg.ID.String()))
	checkFields(t, "message", shown, docs)
	var msg struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		OrderingKey string `json:"ordering_key"`
		Seq         int64  `json:"seq"`
		CausedBy    struct {
			Source  string `json:"source"`
			EventID string `json:"event_id"`
		} `json:"caused_by"`
		Headers http.Header `json:"headers"`
		Payload struct {
			Deal int
			Note string
		} `json:"payload"`
		NextAt   *string                      `json:"next_attempt_at"`
		Attempts []map[string]json.RawMessage `json:"attempts"`
	}
	raw, _ := json.Marshal(shown)
	if err := json.Unmarshal(raw, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID != jsonMsg.ID.String() || msg.Status != "pending" || msg.OrderingKey != "deal-7" || msg.CausedBy.EventID != "evt_1" ||
		msg.Headers.Get("X-Trace") != "t1" || msg.Payload.Deal != 7 || msg.Payload.Note != hostile || msg.NextAt == nil || len(msg.Attempts) != 1 {
		t.Fatalf("outbox show: %+v", msg)
	}
	checkFields(t, "attempt", msg.Attempts[0], docs)
	var body string
	_ = json.Unmarshal(msg.Attempts[0]["response_body"], &body)
	if body != hostile || string(msg.Attempts[0]["status_code"]) != "503" || string(msg.Attempts[0]["duration_ms"]) != "12.5" {
		t.Fatalf("attempt: %v", msg.Attempts[0])
	}

	// outbox dead: the two dead ones, text and binary payloads.
	dead := decodeJSON[[]map[string]json.RawMessage](t, "outbox dead", run("outbox", "dead"))
	if len(dead) != 2 {
		t.Fatalf("outbox dead: %d messages, want 2", len(dead))
	}
	for _, m := range dead {
		checkFields(t, "message", m, docs, "attempts")
		if _, ok := m["attempts"]; ok {
			t.Errorf("outbox dead lists attempts: %v", m)
		}
		var id, text, b64 string
		_ = json.Unmarshal(m["id"], &id)
		switch id {
		case textMsg.ID.String():
			_ = json.Unmarshal(m["payload_text"], &text)
			if text != hostile {
				t.Errorf("text payload %q, want %q", text, hostile)
			}
		case binMsg.ID.String():
			_ = json.Unmarshal(m["payload_base64"], &b64)
			if got, _ := base64.StdEncoding.DecodeString(b64); string(got) != string(binary) {
				t.Errorf("binary payload %q, want %q", got, binary)
			}
		default:
			t.Errorf("outbox dead listed %s", id)
		}
		if string(m["last_status_code"]) != "400" || string(m["next_attempt_at"]) != "null" || string(m["ordering_key"]) != "null" {
			t.Errorf("dead message: %v", m)
		}
	}
	if empty := run("outbox", "dead", "--destination", "nobody"); strings.TrimSpace(empty.stdout) != "[]" {
		t.Errorf("an empty list: %q, want []", empty.stdout)
	}

	paused := decodeJSON[[]map[string]json.RawMessage](t, "outbox paused", run("outbox", "paused"))
	if len(paused) != 1 || string(paused[0]["destination"]) != `"gone-api"` || string(paused[0]["reason"]) != `"HTTP 410"` {
		t.Fatalf("outbox paused: %v", paused)
	}
	checkFields(t, "paused destination", paused[0], docs)

	ev := decodeJSON[map[string]json.RawMessage](t, "inbox show", run("inbox", "show", "forms", "evt_1"))
	checkFields(t, "event", ev, docs)
	if string(ev["refs"]) != `{"email":"ada@example.com"}` && !strings.Contains(string(ev["refs"]), `"email": "ada@example.com"`) {
		t.Fatalf("inbox show refs: %s", ev["refs"])
	}
	var payload struct{ Email string }
	if err := json.Unmarshal(ev["payload"], &payload); err != nil || payload.Email != "ada@example.com" {
		t.Fatalf("inbox show payload: %s", ev["payload"])
	}
	found := decodeJSON[[]map[string]json.RawMessage](t, "inbox find", run("inbox", "find", "email=ada@example.com"))
	if len(found) != 1 || string(found[0]["event_id"]) != `"evt_1"` {
		t.Fatalf("inbox find: %v", found)
	}
	checkFields(t, "event", found[0], docs)
	fails := decodeJSON[[]map[string]json.RawMessage](t, "inbox failures", run("inbox", "failures"))
	if len(fails) != 1 || string(fails[0]["count"]) != "3" || string(fails[0]["reason"]) != `"CRM API timed out"` {
		t.Fatalf("inbox failures: %v", fails)
	}
	checkFields(t, "failure", fails[0], docs)
}

// A script joins an event and the messages it caused on the event's
// stored_id and the messages' caused_by.event_id, whatever the id's length.
func TestEventAndMessageJSONJoinOnStoredID(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	in, _ := inbox.New(nil)
	db := []string{"DATABASE_URL=" + b.url}
	for _, id := range []string{"evt_short", "evt_" + strings.Repeat("x", 300)} {
		if _, err := in.Record(ctx, b.pool, inbox.Event{Source: "forms", ID: id, Type: "lead.created", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		e, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`), CausedBy: &outbox.EventRef{Source: "forms", EventID: id}})
		if err != nil {
			t.Fatal(err)
		}
		ev := decodeJSON[struct {
			EventID  string `json:"event_id"`
			StoredID string `json:"stored_id"`
		}](t, "inbox show", outboxd(t, db, "inbox", "show", "forms", id, "--json"))
		msg := decodeJSON[struct {
			CausedBy struct {
				EventID string `json:"event_id"`
			} `json:"caused_by"`
		}](t, "outbox show", outboxd(t, db, "outbox", "show", e.ID.String(), "--json"))
		if ev.EventID != id || ev.StoredID == "" || ev.StoredID != msg.CausedBy.EventID || (len(id) > 200) != strings.HasPrefix(ev.StoredID, "sha256:") {
			t.Errorf("id of %d bytes: event stored_id %q, message caused_by.event_id %q", len(id), ev.StoredID, msg.CausedBy.EventID)
		}
	}
	// A long id stored as given (before migration 7, and its message by
	// an earlier version): stored_id is what the row holds.
	legacy := "evt_" + strings.Repeat("y", 250)
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload) VALUES ('forms', $1, now() + interval '1 day', '\x7b7d')`, legacy); err != nil {
		t.Fatal(err)
	}
	ev := decodeJSON[struct {
		StoredID string `json:"stored_id"`
	}](t, "inbox show", outboxd(t, db, "inbox", "show", "forms", legacy, "--json"))
	if ev.StoredID != legacy {
		t.Errorf("pre-migration-7 event: stored_id %q; want the id as the row holds it", ev.StoredID)
	}
}
