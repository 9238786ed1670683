package console_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// Hostile or mistaken input is the request's fault: 400 (or 404/405) with a
// plain reason, as JSON under /api/, never a 500, an ERROR log line or a Go
// type name.
func TestInputHygiene(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	pool := pgtest.Pool(t)
	c, err := console.New(pool, &console.Config{
		Users:        []console.User{{Name: "bot", Role: console.Admin, Token: adminToken}},
		Destinations: []string{"email-api"}, MaxShown: 16,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	in, _ := inbox.New(nil)
	out, _ := outbox.New(nil)
	b := &bundle{pool: pool, srv: srv, in: in, out: out}
	bot := "bearer:" + adminToken
	id := b.receive(t, "evt-h", "h@example.com")
	long := strings.Repeat("r", 501)
	for _, c := range []struct {
		method, path, body string
		code               int
		json               bool
	}{
		{"GET", "/events?q=a%00b", "", 400, false},
		{"GET", "/api/events?q=%ff%fe", "", 400, true},
		{"GET", "/api/events?source=%00", "", 400, true},
		{"GET", "/events/forms/evt%00x", "", 400, false},
		{"GET", "/api/messages?since=2026-02-01&until=2026-01-01", "", 400, true},
		{"GET", "/api/nothing-here", "", 404, true},
		{"DELETE", "/api/events", "", 405, true},
		{"POST", "/api/destinations/no-such-destination/pause", "", 404, true},
		{"POST", "/api/destinations/email-api/pause", `{"reason":"` + long + `"}`, 400, true},
		{"POST", "/api/destinations/email-api/pause", `{"reason":"a"} {"reason":"b"}`, 400, true},
		{"POST", "/api/destinations/email-api/pause", `{"reason":7}`, 400, true},
		{"POST", "/api/dead/requeue", `{"ids":"x"}`, 400, true},
		{"POST", "/api/dead/requeue", `{"destination":"a\u0000b"}`, 400, true},
		{"POST", "/api/dead/requeue", `{"destination":"a","since":"2026-02-01T00:00:00Z","until":"2026-01-01T00:00:00Z"}`, 400, true},
	} {
		var body *strings.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		var r reply
		if body != nil {
			r = b.do(t, c.method, c.path, bot, body, nil)
		} else {
			r = b.do(t, c.method, c.path, bot, nil, nil)
		}
		if r.code != c.code {
			t.Errorf("%s %s %s: %d, want %d: %s", c.method, c.path, c.body, r.code, c.code, r.body)
		}
		if isJSON := strings.HasPrefix(r.h.Get("Content-Type"), "application/json"); isJSON != c.json || (c.json && !strings.HasPrefix(r.body, `{`)) {
			t.Errorf("%s %s: Content-Type %s, body %.80s", c.method, c.path, r.h.Get("Content-Type"), r.body)
		}
		for _, goName := range []string{"uuid.UUID", "Go struct", "Go value", "time.Time", "console.DeadSelection", "json: "} {
			if strings.Contains(r.body, goName) {
				t.Errorf("%s %s: the answer names a Go type (%s): %s", c.method, c.path, goName, r.body)
			}
		}
	}
	// Bearer is case-insensitive (RFC 9110).
	if r := b.do(t, "GET", "/api/session", "", nil, map[string]string{"Authorization": "bearer " + adminToken}); r.code != 200 {
		t.Errorf("lower-case bearer: %d", r.code)
	}
	// API bodies are capped like the pages' (MaxShown, 16 bytes here).
	msg := decode[struct {
		Payload struct {
			Text      string `json:"text"`
			Size      int    `json:"size"`
			Truncated bool   `json:"truncated"`
		} `json:"payload"`
		CausedBy map[string]string `json:"caused_by"`
	}](t, b.do(t, "GET", "/api/messages/"+id.String(), bot, nil, nil))
	if len(msg.Payload.Text) != 16 || !msg.Payload.Truncated || msg.Payload.Size != len(`{"to":"h@example.com"}`) {
		t.Errorf("payload in the API: %+v", msg.Payload)
	}
	if msg.CausedBy["source"] != "forms" || msg.CausedBy["event_id"] != "evt-h" {
		t.Errorf("caused_by: %v, want snake_case source and event_id", msg.CausedBy)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("hostile input logged an ERROR:\n%s", logs.String())
	}
}
