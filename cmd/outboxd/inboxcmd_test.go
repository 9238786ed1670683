package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/inbox"
)

func TestInboxCommands(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	in, _ := inbox.New(nil)
	if _, err := in.Record(ctx, b.pool, inbox.Event{Source: "forms", ID: "evt_42", Type: "lead.created",
		Payload: []byte(`{"email":"ada@example.com"}`), Headers: http.Header{"Webhook-Id": {"evt_42"}},
		Refs: map[string]string{"email": "ada@example.com", "contact_id": "42"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_failures (source, event_id, kind, reason, status_code, count)
		VALUES ('forms', 'evt_7', 'failed', 'CRM API timed out', 503, 3)`); err != nil {
		t.Fatal(err)
	}
	db := []string{"--database-url", b.url}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inbox", "show", "forms", "evt_42"}, 0, "payload\n    {\n      \"email\": \"ada@example.com\"\n    }\n"},
		{[]string{"inbox", "show", "forms", "evt_42"}, 0, "refs            contact_id=42 email=ada@example.com\nheader          Webhook-Id: evt_42\n"},
		{[]string{"inbox", "find", "contact_id=42"}, 0, "evt_42"},
		{[]string{"inbox", "find", "email=nobody@example.com"}, 0, "SOURCE"},
		{[]string{"inbox", "failures", "--source", "forms"}, 0, "CRM API timed out"},
		{[]string{"inbox", "show", "forms", "evt_nope"}, 1, ""},
		{[]string{"inbox", "find", "no-equals"}, 2, ""},
		{[]string{"inbox", "show", "forms"}, 2, ""},
		{[]string{"inbox", "dance"}, 2, ""},
	} {
		r := runIn(append(tc.args, db...)...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runIn(append([]string{"inbox", "find", "email=nobody@example.com"}, db...)...); strings.Contains(r.stdout, "evt_42") {
		t.Errorf("find matched the wrong event: %s", r.stdout)
	}
}
