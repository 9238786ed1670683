package main

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/outbox"
)

// What a sender or a downstream wrote cannot drive the operator's
// terminal: show escapes control characters and invalid UTF-8.
func TestShowEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	const hostile = "\x1b]0;pwned\x07 text\r\x9b2J \xff\xfe"
	e, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Type: "t\x1b[2J", Payload: []byte(hostile)})
	if err != nil {
		t.Fatal(err)
	}
	// Enqueue refuses such a header; a row written another way (SQL, an
	// older version) may still hold one.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET headers = $2 WHERE id = $1`,
		e.ID, `{"X-Evil": ["a\u001b[31mred"]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
VALUES ($1, 1, now(), 5, 'retry', 500, $2, $3, 'd1')`, e.ID, "HTTP 500 \x1b[2J", "\x1b]0;pwned\x07 body"); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	if _, err := in.Record(ctx, b.pool, inbox.Event{Source: "forms", ID: "evt_1", Type: "x",
		Payload: []byte("\x1b]0;pwned\x07 binary \x00\x01\xff"), Refs: map[string]string{"k": "v\x1b[2J"}}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"outbox", "show", e.ID.String()},
		{"inbox", "show", "forms", "evt_1"},
	} {
		r := outboxd(t, []string{"DATABASE_URL=" + b.url}, args...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		for _, c := range r.stdout {
			if c < ' ' && c != '\n' && c != '\t' || c == 0x7f || c >= 0x80 && c < 0xa0 {
				t.Errorf("%v: control character %U in the output:\n%q", args, c, r.stdout)
				break
			}
		}
		if !utf8.ValidString(r.stdout) {
			t.Errorf("%v: invalid UTF-8 in the output: %q", args, r.stdout)
		}
		if !strings.Contains(r.stdout, `\x1b]0;pwned\x07`) {
			t.Errorf("%v: want the escape shown as \\x1b...:\n%s", args, r.stdout)
		}
	}
}
