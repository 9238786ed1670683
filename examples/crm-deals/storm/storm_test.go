package storm

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox/inboxtest"
	"github.com/outboxd/outboxd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T) *Env {
	t.Helper()
	e, err := Start(context.Background(), pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=12"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// crmState is everything an event may change, downstream sends included.
type crmState struct {
	Contacts, Tasks, Notes, Messages int
	Stages                           string
	Sends                            int
}

func (e *Env) state(t testing.TB) any {
	t.Helper()
	ctx := context.Background()
	if err := e.waitDrained(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var s crmState
	err := e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM crm.contacts), (SELECT count(*) FROM crm.tasks),
		(SELECT count(*) FROM crm.notes), (SELECT count(*) FROM outboxd.outbox_messages),
		(SELECT coalesce(string_agg(id || '=' || stage || '@' || coalesce(stage_at::text, '-'), ',' ORDER BY id), '') FROM crm.deals)`).
		Scan(&s.Contacts, &s.Tasks, &s.Notes, &s.Messages, &s.Stages)
	if err != nil {
		t.Fatal(err)
	}
	s.Sends = len(e.Downstream.Sends())
	return s
}

// request builds a signed request for the CRM's handler (signed anew on each
// delivery, as a sender's retry would be).
func (e *Env) request(source string, body []byte, id string) inboxtest.Request {
	return func() *http.Request {
		now := time.Now()
		var r *http.Request
		switch source {
		case "forms":
			r, _ = http.NewRequest(http.MethodPost, "/webhooks/forms", bytesReader(body))
			r.Header.Set("Webhook-Id", id)
			r.Header.Set("Webhook-Timestamp", itoa(now.Unix()))
			r.Header.Set("Webhook-Signature", e.send.forms.Sign(id, now, body))
		case "payments":
			r, _ = http.NewRequest(http.MethodPost, "/webhooks/payments", bytesReader(body))
			r.Header.Set("Stripe-Signature", "t="+itoa(now.Unix())+",v1="+mac(Secrets.Payments, itoa(now.Unix())+"."+string(body)))
		case "calendar":
			r, _ = http.NewRequest(http.MethodPost, "/webhooks/calendar", bytesReader(body))
			r.Header.Set("X-Calendar-Timestamp", itoa(now.Unix()))
			r.Header.Set("X-Calendar-Signature", "sha256="+mac(Secrets.Calendar, itoa(now.Unix())+"."+string(body)))
		}
		return r
	}
}

// Every kind of event, delivered twice: contacts, deals, tasks, notes,
// outbox messages and downstream sends are as after one delivery.
func TestEveryEventTwice(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first := lead{id: "L01", email: "ada@example.com", name: "Ada", amount: 100}
	for _, ev := range []struct {
		source, id string
		body       []byte
	}{
		{"forms", "form_L01", leadBody(first)},
		{"forms", "form_L02", leadBody(lead2())}, // the same person again: same contact, a new deal
		{"calendar", "", calendarBody("call.logged", "deal-L01", t0.Add(time.Hour))},
		{"calendar", "", calendarBody("meeting.booked", "deal-L01", t0.Add(2*time.Hour))},
		{"payments", "", paymentBody("deal-L01", t0.Add(3*time.Hour), 100)},
	} {
		inboxtest.DeliverTwice(t, e.CRM, e.request(ev.source, ev.body, ev.id), e.state)
	}
	s := e.state(t).(crmState)
	if s.Contacts != 1 || s.Tasks != 2 || s.Messages != 4 || s.Sends != 4 {
		t.Fatalf("state %+v: want 1 contact, 2 deals' tasks, 2 welcome emails + meeting + won messages", s)
	}
	// A lead storm: 20 concurrent deliveries of one new lead.
	l3 := lead{id: "L03", email: "grace@example.com", name: "Grace", amount: 300}
	after := inboxtest.DeliverConcurrently(t, e.CRM, e.request("forms", leadBody(l3), "form_L03"), 20, e.state).(crmState)
	if after.Contacts != 2 || after.Tasks != 3 || after.Sends != 5 {
		t.Fatalf("after 20 concurrent deliveries: %+v", after)
	}
}

func lead2() lead { return lead{id: "L02", email: "ADA@example.com", name: "Ada L.", amount: 200} }

// The same deal events delivered newest first end in the same state as in
// order: an older event never rolls a deal back.
func TestOutOfOrderEndsInTheSameState(t *testing.T) {
	t.Parallel()
	final := func(order []int) any {
		e := setup(t)
		inboxtest.DeliverTwice(t, e.CRM, e.request("forms", leadBody(lead{id: "L01", email: "a@example.com", name: "A"}), "form_L01"), e.state)
		events := []inboxtest.Request{
			e.request("calendar", calendarBody("call.logged", "deal-L01", t0.Add(time.Hour)), ""),
			e.request("calendar", calendarBody("meeting.booked", "deal-L01", t0.Add(2*time.Hour)), ""),
			e.request("payments", paymentBody("deal-L01", t0.Add(3*time.Hour), 500), ""),
		}
		for _, i := range order {
			inboxtest.DeliverTwice(t, e.CRM, events[i], e.state)
		}
		s := e.state(t).(crmState)
		// Messages differ by design: a meeting learnt after the deal was won
		// notifies nobody. The CRM's records must not.
		return [4]any{s.Contacts, s.Tasks, s.Notes, s.Stages}
	}
	inOrder, newestFirst := final([]int{0, 1, 2}), final([]int{2, 1, 0})
	if inOrder != newestFirst {
		t.Fatalf("in order: %v\nnewest first: %v", inOrder, newestFirst)
	}
}

// The whole demo: duplicates, concurrent duplicates, out-of-order events, bad
// requests, and a downstream outage after which every notification is
// applied exactly once (by idempotency key).
func TestDemoStorm(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.RefusedDuringOutage == 0 || s.Sends["/email/send"] != 18 {
		t.Fatalf("summary %+v", s)
	}
}
