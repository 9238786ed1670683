package storm

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Run plays the storm and checks the invariants. The error names the first
// broken invariant.
func (e *Env) Run(ctx context.Context) (*Summary, error) {
	s, t := e.send, newTally()
	m := &model{emails: map[string]bool{}, stages: map[string]string{}}
	now := time.Now
	leadOf := func(n int, email string) lead {
		return lead{id: fmt.Sprintf("L%02d", n), email: email, name: fmt.Sprintf("Customer %02d", n), amount: int64(1000 * n)}
	}
	deliverLead := func(l lead, times int) {
		for i := 0; i < times; i++ {
			t.add("forms", s.form("form_evt_"+l.id, leadBody(l), now()))
		}
		m.emails[strings.ToLower(l.email)] = true
		if _, ok := m.stages["deal-"+l.id]; !ok {
			m.stages["deal-"+l.id] = "new"
		}
	}
	twice := func(source string, send func() response) {
		for i := 0; i < 2; i++ {
			t.add(source, send())
		}
	}

	e.logf("[1/7] 12 new leads, each delivered twice (two of them are returning contacts)")
	for n := 1; n <= 10; n++ {
		deliverLead(leadOf(n, fmt.Sprintf("customer%02d@example.com", n)), 2)
	}
	deliverLead(leadOf(11, "customer02@example.com"), 2) // the same person, a second deal
	deliverLead(leadOf(12, "Customer05@Example.com"), 2) // the same email, other case

	e.logf("[2/7] one lead delivered 20 times at once")
	l13 := leadOf(13, "customer13@example.com")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); t.add("forms", s.form("form_evt_L13", leadBody(l13), now())) }()
	}
	wg.Wait()
	m.emails[l13.email], m.stages["deal-L13"] = true, "new"

	e.logf("[3/7] calls and meetings from the dialer and the calendar, each twice")
	for n := 1; n <= 6; n++ {
		deal := fmt.Sprintf("deal-L%02d", n)
		twice("calendar", func() response {
			return s.calendar(calendarBody("call.logged", deal, t0.Add(time.Hour)), now(), s.calendarKey)
		})
		m.stages[deal] = "qualified"
	}
	for n := 1; n <= 3; n++ {
		deal := fmt.Sprintf("deal-L%02d", n)
		twice("calendar", func() response {
			return s.calendar(calendarBody("meeting.booked", deal, t0.Add(2*time.Hour)), now(), s.calendarKey)
		})
		m.stages[deal], m.chats = "meeting", m.chats+1
	}

	e.logf("[4/7] events out of order: deal L07 gets its payment before its call and meeting; L08 in order")
	twice("payments", func() response {
		return s.payment(paymentBody("deal-L07", t0.Add(3*time.Hour), 7000), now(), s.paymentsKey)
	})
	twice("calendar", func() response {
		return s.calendar(calendarBody("meeting.booked", "deal-L07", t0.Add(2*time.Hour)), now(), s.calendarKey)
	})
	twice("calendar", func() response {
		return s.calendar(calendarBody("call.logged", "deal-L07", t0.Add(time.Hour)), now(), s.calendarKey)
	})
	m.stages["deal-L07"], m.chats = "won", m.chats+1
	twice("calendar", func() response {
		return s.calendar(calendarBody("call.logged", "deal-L08", t0.Add(time.Hour)), now(), s.calendarKey)
	})
	twice("calendar", func() response {
		return s.calendar(calendarBody("meeting.booked", "deal-L08", t0.Add(2*time.Hour)), now(), s.calendarKey)
	})
	twice("payments", func() response {
		return s.payment(paymentBody("deal-L08", t0.Add(3*time.Hour), 8000), now(), s.paymentsKey)
	})
	m.stages["deal-L08"], m.chats = "won", m.chats+2

	e.logf("[5/7] a payment that arrives before its lead: 503 until the lead exists, then processed once")
	l14 := leadOf(14, "customer14@example.com")
	early := s.payment(paymentBody("deal-L14", t0.Add(3*time.Hour), 14000), now(), s.paymentsKey)
	t.add("payments", early)
	if early.code != 503 {
		return nil, fmt.Errorf("invariant broken: a payment for a deal that does not exist yet answered %d, want 503 (retry)", early.code)
	}
	deliverLead(l14, 2)
	twice("payments", func() response {
		return s.payment(paymentBody("deal-L14", t0.Add(3*time.Hour), 14000), now(), s.paymentsKey)
	})
	m.stages["deal-L14"], m.chats = "won", m.chats+1

	e.logf("[6/7] bad requests: wrong secret, stale signature, oversized body, unknown source")
	badSigner := *s
	badSigner.paymentsKey = "not-the-secret"
	for i := 0; i < 3; i++ {
		if r := badSigner.payment(paymentBody("deal-L09", t0, 1), now(), badSigner.paymentsKey); r.code != 401 {
			return nil, fmt.Errorf("invariant broken: a request signed with the wrong secret answered %d, want 401", r.code)
		}
		t.add("payments", response{code: 401})
	}
	r := s.form("form_evt_stale", leadBody(leadOf(99, "stale@example.com")), now().Add(-time.Hour))
	if r.code != 401 {
		return nil, fmt.Errorf("invariant broken: a stale signature answered %d, want 401", r.code)
	}
	t.add("forms", r)
	big := bytes.Repeat([]byte("x"), 2<<20)
	r = s.form("form_evt_big", big, now())
	if r.code != 413 {
		return nil, fmt.Errorf("invariant broken: a 2 MiB body answered %d, want 413", r.code)
	}
	t.add("forms", r)
	if r := s.do("fax", []byte("{}"), nil); r.code != 404 {
		return nil, fmt.Errorf("invariant broken: an unknown source answered %d, want 404", r.code)
	}

	e.logf("[7/7] downstream outage: the email and chat APIs answer 503 while 4 leads and 2 payments arrive, then recover")
	e.Downstream.SetOutage(true)
	for n := 15; n <= 18; n++ {
		deliverLead(leadOf(n, fmt.Sprintf("customer%02d@example.com", n)), 2)
	}
	for _, deal := range []string{"deal-L01", "deal-L02"} {
		twice("payments", func() response { return s.payment(paymentBody(deal, t0.Add(4*time.Hour), 5000), now(), s.paymentsKey) })
		m.stages[deal], m.chats = "won", m.chats+1
	}
	time.Sleep(2 * time.Second)
	_, _, refused := e.Downstream.Stats()
	e.logf("      outage: %d requests refused so far; recovering", refused)
	e.Downstream.SetOutage(false)
	if err := e.waitDrained(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	return e.check(ctx, t, m)
}
