package inbox_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
)

// Item 1: an id-less event is keyed on its body, never on the signing
// time: one event re-signed on each retry is processed once, and two
// different events signed in the same second are both processed.
func TestIDLessEventsKeyedOnTheBody(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	now := time.Now()
	booked := []byte(`{"kind":"meeting.booked","deal":"d1"}`)
	for i := 0; i < 3; i++ { // one calendar event, re-signed 1.1 s apart
		at := now.Add(time.Duration(i) * 1100 * time.Millisecond)
		f.twice(t, 200, func() reply { return f.send(t, "/calendar", booked, calHeaders(at, booked)) })
	}
	if s := f.state(t); s.effects != 1 || s.events != 1 {
		t.Fatalf("one event sent 3 times: %+v", s)
	}
	other := []byte(`{"kind":"meeting.booked","deal":"d2"}`)
	r := f.send(t, "/calendar", other, calHeaders(now, other)) // same second as the first
	if r.code != 200 || !strings.Contains(r.body, "processed") || r.header.Get("X-Outboxd-Dedupe") != "best-effort" {
		t.Fatalf("a second event signed in the same second: %+v", r)
	}
	// Slack slash commands carry no id either.
	cmd := []byte("command=%2Fdeal&text=won+d1&trigger_id=13345224609.738474920.8088930838d88f008e0")
	for i := 0; i < 2; i++ {
		at := now.Add(time.Duration(i) * 1100 * time.Millisecond)
		f.twice(t, 200, func() reply { return f.send(t, "/slack", cmd, slackHeaders(at, cmd)) })
	}
	if s := f.state(t); s.effects != 3 || s.events != 3 {
		t.Fatalf("after the second event and a slash command re-signed: %+v", s)
	}
	ev, err := f.inbox.Get(context.Background(), f.pool, "slack", inbox.BodyID(cmd))
	if err != nil || !ev.BestEffort {
		t.Fatalf("slash command stored under its body's id: %+v %v", ev, err)
	}
}

// Item 3: an empty id where the provider always sends one is malformed:
// 422 on every delivery, one rejected record, a failure row, no effect.
func TestEmptyEventIDIsMalformed(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	body := []byte(`{"id":"","type":"invoice.paid","created":1795000000}`)
	s := f.twice(t, 422, func() reply { return f.send(t, "/stripe", body, stripeHeaders(time.Now(), body)) })
	if s != (pstate{effects: 0, events: 1, failures: 1}) {
		t.Fatalf("state %+v", s)
	}
	fails, err := f.inbox.Failures(context.Background(), f.pool, "stripe", "", 5)
	if err != nil || len(fails) != 1 || fails[0].Kind != "rejected" || fails[0].Count != 2 || !strings.Contains(fails[0].Reason, `"id"`) {
		t.Fatalf("failures %+v %v", fails, err)
	}
}

// Item 13: authentic events that cannot be stored as they are. A 10 KB id
// is keyed by its hash (the original kept); a NUL byte or invalid UTF-8 in
// the id, or a NUL in a field the handler stores, is malformed (422), and
// the failure row is always written.
func TestUnstorableEvents(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	ctx := context.Background()
	// Random, so that PostgreSQL cannot compress it under the btree limit.
	raw := make([]byte, 5000)
	_, _ = rand.Read(raw)
	longID := "evt_" + hex.EncodeToString(raw)
	long := []byte(`{"id":"` + longID + `","type":"invoice.paid"}`)
	f.twice(t, 200, func() reply { return f.send(t, "/stripe", long, stripeHeaders(time.Now(), long)) })
	ev, err := f.inbox.Get(ctx, f.pool, "stripe", longID)
	if err != nil || ev.ID != longID || ev.DuplicateCount != 1 {
		t.Fatalf("long id: %v %d %v", len(ev.ID), ev.DuplicateCount, err)
	}
	var effectID string
	if err := f.pool.QueryRow(ctx, `SELECT event_id FROM effects`).Scan(&effectID); err != nil || effectID != longID {
		t.Fatalf("the handler saw id of %d bytes, %v", len(effectID), err)
	}
	before := f.state(t)
	stripe := func(body string) func() reply {
		return func() reply { return f.send(t, "/stripe", []byte(body), stripeHeaders(time.Now(), []byte(body))) }
	}
	// JSON decoding turns invalid UTF-8 into U+FFFD, so that case comes in
	// a header id.
	badID := "msg_\xff\xfe"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for _, tc := range []struct {
		name    string
		deliver func() reply
	}{
		{"NUL in id", stripe(`{"id":"evt_\u0000x","type":"invoice.paid"}`)},
		{"invalid UTF-8 id", func() reply {
			return f.send(t, "/forms", []byte(`{}`), stdHeaders("Webhook", badID, ts, []byte(`{}`)))
		}},
		{"NUL in a note", stripe(`{"id":"evt_note","type":"invoice.paid","note":"a\u0000b"}`)},
		{"NUL in a long id's note", stripe(`{"id":"evt_` + strings.Repeat("y", 5000) + `","note":"\u0000"}`)},
	} {
		s := f.twice(t, 422, tc.deliver)
		if s.effects != before.effects || s.events != before.events+1 || s.failures != before.failures+1 {
			t.Fatalf("%s: state %+v after %+v", tc.name, s, before)
		}
		before = s
	}
}

// A data exception in the handler is permanent (422) unless the handler
// marks it Transient itself (503).
func TestDataExceptionUnlessMarkedTransient(t *testing.T) {
	t.Parallel()
	var marked atomic.Bool
	f := newPfix(t, nil, func(c *inbox.ReceiverConfig) {
		c.Sources[3].Handle = func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
			_, err := tx.Exec(ctx, `SELECT 1/0`) // SQLSTATE 22012
			if marked.Load() {
				return inbox.Transient(err)
			}
			return err
		}
	})
	body := []byte(`{}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	f.twice(t, 422, func() reply { return f.send(t, "/forms", body, stdHeaders("Webhook", "evt_div", ts, body)) })
	marked.Store(true)
	f.twice(t, 503, func() reply { return f.send(t, "/forms", body, stdHeaders("Webhook", "evt_div_marked", ts, body)) })
	if s := f.state(t); s.events != 1 || s.failures != 2 {
		t.Fatalf("state %+v", s)
	}
}

// Slack's url_verification handshake is answered with its challenge (Slack
// will not enable the endpoint otherwise), and is not an event: nothing is
// recorded and no handler runs, however often it comes.
func TestSlackURLVerificationIsAnswered(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	body := []byte(`{"token":"legacy","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	for i := 0; i < 2; i++ {
		r := f.send(t, "/slack", body, slackHeaders(time.Now(), body))
		if r.code != 200 || !strings.Contains(r.body, `"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"`) {
			t.Fatalf("handshake %d: %+v", i, r)
		}
	}
	if s := f.state(t); s.effects != 0 || s.events != 0 {
		t.Fatalf("the handshake was recorded: %+v", s)
	}
	// An unsigned one is refused like any request.
	if r := f.send(t, "/slack", body, map[string]string{}); r.code != 401 {
		t.Fatalf("unsigned handshake: %+v", r)
	}
}
