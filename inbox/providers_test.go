package inbox_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox"
)

// Item 9: absurd timestamps are refused through the real handler (the
// difference used to overflow), and the tolerance's edges hold.
func TestReceiverTimestampExtremes(t *testing.T) {
	t.Parallel()
	now := time.Unix(1767225600, 0)
	f := newPfix(t, nil, func(c *inbox.ReceiverConfig) { c.Now = func() time.Time { return now } })
	body := []byte(`{"n":1}`)
	for i, tc := range []struct {
		ts   string
		code int
	}{
		{strconv.FormatInt(math.MaxInt64, 10), 401},
		{strconv.FormatInt(math.MinInt64, 10), 401},
		{strconv.FormatInt(now.Unix()+300*365*86400, 10), 401},
		{"1767225600000", 401}, // milliseconds
		{strconv.FormatInt(now.Unix()+301, 10), 401},
		{strconv.FormatInt(now.Unix()-301, 10), 401},
		{strconv.FormatInt(now.Unix()+300, 10), 200},
		{strconv.FormatInt(now.Unix()-300, 10), 200},
	} {
		id := fmt.Sprintf("evt_%d", i)
		f.twice(t, tc.code, func() reply { return f.send(t, "/forms", body, stdHeaders("Webhook", id, tc.ts, body)) })
	}
	if s := f.state(t); s.effects != 2 || s.events != 2 {
		t.Fatalf("state %+v", s)
	}
}

// Item 6: Svix's unbranded headers are accepted, as Svix's libraries do.
func TestSvixUnbrandedThroughTheReceiver(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	body := []byte(`{"type":"user.created"}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	f.twice(t, 200, func() reply { return f.send(t, "/svix", body, stdHeaders("Webhook", "msg_unbranded", ts, body)) })
	f.twice(t, 200, func() reply { return f.send(t, "/svix", body, stdHeaders("Svix", "msg_branded", ts, body)) })
	if s := f.state(t); s.effects != 2 {
		t.Fatalf("state %+v", s)
	}
}

// Items 2, 7, 8: Twilio's status callbacks for one message are distinct
// events; the URL is accepted without its port; repeated form keys are
// signed once.
func TestTwilioThroughTheReceiver(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	url := f.srv.URL + "/twilio"
	for _, status := range []string{"queued", "sent", "delivered"} {
		body := []byte("MessageSid=SM1&MessageStatus=" + status)
		h := twilioHeaders(url, "MessageSidSM1MessageStatus"+status)
		f.twice(t, 200, func() reply { return f.send(t, "/twilio", body, h) })
	}
	if s := f.state(t); s.effects != 3 {
		t.Fatalf("three status callbacks: %+v", s)
	}
	// The idempotency token is the id when Twilio sends one.
	body := []byte("MessageSid=SM1&MessageStatus=read")
	h := twilioHeaders(url, "MessageSidSM1MessageStatusread")
	h["I-Twilio-Idempotency-Token"] = "tok-77"
	f.twice(t, 200, func() reply { return f.send(t, "/twilio", body, h) })
	// The token is not signed: a captured callback replayed under another
	// token (here one that names a later status) is a duplicate, and leaves
	// no id behind that would swallow the real later callback.
	replay := []byte("MessageSid=SM1&MessageStatus=queued")
	rh := twilioHeaders(url, "MessageSidSM1MessageStatusqueued")
	rh["I-Twilio-Idempotency-Token"] = "SM1:undelivered"
	if r := f.send(t, "/twilio", replay, rh); r.code != 200 || !strings.Contains(r.body, "duplicate") {
		t.Fatalf("replay under a fresh token: %+v", r)
	}
	if _, err := f.inbox.Get(context.Background(), f.pool, "twilio", "SM1:undelivered"); err == nil {
		t.Fatal("the replay left its token behind")
	}
	// Signed over the URL without its port (a proxy rebuilt it so).
	bare := strings.Replace(url, ":"+strings.Split(f.srv.Listener.Addr().String(), ":")[1], "", 1)
	body = []byte("MessageSid=SM2&MessageStatus=sent&Tag=a&Tag=a")
	f.twice(t, 200, func() reply {
		return f.send(t, "/twilio", body, twilioHeaders(bare, "MessageSidSM2MessageStatussentTaga"))
	})
	// Another port is not the same URL.
	other := strings.Replace(bare, "127.0.0.1", "127.0.0.1:1", 1)
	body3 := []byte("MessageSid=SM3&MessageStatus=sent")
	f.twice(t, 401, func() reply {
		return f.send(t, "/twilio", body3, twilioHeaders(other, "MessageSidSM3MessageStatussent"))
	})
	if s := f.state(t); s.effects != 5 {
		t.Fatalf("state %+v", s)
	}
	for _, id := range []string{"SM1:queued", "SM1:sent", "SM1:delivered", "tok-77", "SM2:sent"} {
		if _, err := f.inbox.Get(context.Background(), f.pool, "twilio", id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// Item 5: the event's own time is stored and handed over apart from the
// signing time.
func TestEventTimeApartFromSigningTime(t *testing.T) {
	t.Parallel()
	signed := time.Unix(1795928597, 0)
	f := newPfix(t, nil, func(c *inbox.ReceiverConfig) { c.Now = func() time.Time { return signed } })
	body := []byte(`{"id":"evt_t","type":"invoice.paid","created":1795000000}`)
	f.twice(t, 200, func() reply { return f.send(t, "/stripe", body, stripeHeaders(signed, body)) })
	ev, err := f.inbox.Get(context.Background(), f.pool, "stripe", "evt_t")
	if err != nil || ev.OccurredAt == nil || ev.OccurredAt.Unix() != 1795000000 || ev.SignedAt == nil || !ev.SignedAt.Equal(signed) {
		t.Fatalf("stored %v / %v, %v", ev.OccurredAt, ev.SignedAt, err)
	}
	// Without an event time in the payload, occurred_at stays empty.
	cal := []byte(`{"kind":"x"}`)
	f.twice(t, 200, func() reply { return f.send(t, "/calendar", cal, calHeaders(signed, cal)) })
	ev, err = f.inbox.Get(context.Background(), f.pool, "calendar", inbox.BodyID(cal))
	if err != nil || ev.OccurredAt != nil || ev.SignedAt == nil {
		t.Fatalf("calendar: %v / %v, %v", ev.OccurredAt, ev.SignedAt, err)
	}
}

// Item 4: GitHub's delivery id is not signed: a captured request replayed
// under a fresh one is a duplicate (body dedupe, on by default for GitHub),
// unless the source turns it off.
func TestReplayUnderAFreshDeliveryID(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	body := []byte(`{"action":"opened","issue":{"id":1,"updated_at":"2026-11-01T10:00:00Z"}}`)
	f.twice(t, 200, func() reply { return f.send(t, "/github", body, githubHeaders("d-1", body)) })
	r := f.send(t, "/github", body, githubHeaders("d-forged", body))
	if r.code != 200 || !strings.Contains(r.body, "duplicate") {
		t.Fatalf("replay: %+v", r)
	}
	other := []byte(`{"action":"closed","issue":{"id":1,"updated_at":"2026-11-01T11:00:00Z"}}`)
	f.twice(t, 200, func() reply { return f.send(t, "/github", other, githubHeaders("d-2", other)) })
	if s := f.state(t); s.effects != 2 {
		t.Fatalf("state %+v", s)
	}
	if _, err := f.inbox.Get(context.Background(), f.pool, "github", "d-forged"); err == nil {
		t.Fatal("the replay left its id behind")
	}
	// X-GitHub-Event is not signed: a replay under a fresh id and another
	// event type is still a duplicate.
	if r := f.send(t, "/github", body, githubEventHeaders("d-4", "issue_comment", body)); r.code != 200 || !strings.Contains(r.body, "duplicate") {
		t.Fatalf("replay under another event type: %+v", r)
	}

	off := newPfix(t, nil, func(c *inbox.ReceiverConfig) { c.Sources[6].BodyDedupe = inbox.BodyDedupeOff })
	off.twice(t, 200, func() reply { return off.send(t, "/github", body, githubHeaders("d-1", body)) })
	off.twice(t, 200, func() reply { return off.send(t, "/github", body, githubHeaders("d-3", body)) })
	if s := off.state(t); s.effects != 2 {
		t.Fatalf("body dedupe off: %+v", s)
	}
}

// A captured GitHub request replayed with a broken unsigned header (an
// event type that is not UTF-8, an id holding U+FFFD) is rejected, and its
// record must not stand for the genuine event's body: the rejected
// request's body was kept under the body's id, which is GitHub's
// body-dedupe key, and the genuine delivery answered "200 duplicate"
// without running its handler. Each is delivered twice.
func TestARejectedReplayDoesNotSwallowTheGenuineEvent(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	for i, broken := range []map[string]string{
		githubEventHeaders("d-9", "issues\xff", []byte(`{"action":"opened","issue":{"id":9}}`)),
		githubHeaders("d-10\ufffd", []byte(`{"action":"opened","issue":{"id":10}}`)),
	} {
		body := []byte(fmt.Sprintf(`{"action":"opened","issue":{"id":%d}}`, 9+i))
		f.twice(t, 422, func() reply { return f.send(t, "/github", body, broken) })
		f.twice(t, 200, func() reply { return f.send(t, "/github", body, githubHeaders(fmt.Sprintf("d-%d", 9+i), body)) })
		if s := f.state(t); s.effects != i+1 {
			t.Fatalf("genuine event %d after a rejected replay of its body: %+v", i+1, s)
		}
	}
}

// Forget removes the body-dedupe record with the event's own, so a
// deliberate replay (and inboxtest.Replay) of a GitHub, Shopify, Twilio or
// Linear event runs the handler again instead of answering duplicate.
func TestForgetAlsoForgetsTheBodyRecord(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	body := []byte(`{"action":"opened","issue":{"id":7,"updated_at":"2026-11-02T10:00:00Z"}}`)
	f.twice(t, 200, func() reply { return f.send(t, "/github", body, githubHeaders("d-7", body)) })
	ok, err := f.inbox.Forget(context.Background(), f.pool, "github", "d-7")
	if err != nil || !ok {
		t.Fatalf("forget: %v %v", ok, err)
	}
	if s := f.state(t); s.events != 0 {
		t.Fatalf("%d records left after Forget", s.events)
	}
	r := f.send(t, "/github", body, githubHeaders("d-7", body))
	if r.code != 200 || !strings.Contains(r.body, "processed") {
		t.Fatalf("replay after Forget: %+v", r)
	}
	// The replay is recorded again: delivered twice more, nothing changes.
	f.twice(t, 200, func() reply { return f.send(t, "/github", body, githubHeaders("d-7", body)) })
	if s := f.state(t); s.effects != 2 {
		t.Fatalf("state %+v: the replay must run the handler again", s)
	}
}

// Shopify sends one order under two topics (orders/create and orders/paid
// for an order paid at checkout): two events, both processed; a replay of
// either under a fresh webhook id is a duplicate.
func TestShopifyOneBodyUnderTwoTopics(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	order := []byte(`{"id":820982911946154508,"financial_status":"paid","updated_at":"2026-11-02T10:00:00Z"}`)
	f.twice(t, 200, func() reply { return f.send(t, "/shopify", order, shopifyHeaders("w-1", "orders/create", order)) })
	f.twice(t, 200, func() reply { return f.send(t, "/shopify", order, shopifyHeaders("w-2", "orders/paid", order)) })
	if s := f.state(t); s.effects != 2 {
		t.Fatalf("two topics, one body: %+v", s)
	}
	if r := f.send(t, "/shopify", order, shopifyHeaders("w-forged", "orders/paid", order)); r.code != 200 || !strings.Contains(r.body, "duplicate") {
		t.Fatalf("replay under a fresh id: %+v", r)
	}
}
