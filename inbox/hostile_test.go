package inbox_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox"
)

// Item 11: unknown paths share one metric series, however many there are,
// and a path that is not UTF-8 answers 404 instead of panicking.
func TestUnknownSourcesShareOneSeries(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	for i := 0; i < 500; i++ {
		if r := f.send(t, fmt.Sprintf("/webhooks/nobody-%d", i), []byte(`{}`), nil); r.code != 404 {
			t.Fatalf("unknown source %d: %+v", i, r)
		}
	}
	for i := 0; i < 2; i++ {
		if r := f.send(t, "/webhooks/%FF", []byte(`{}`), nil); r.code != 404 {
			t.Fatalf("/webhooks/%%FF: %+v", r)
		}
	}
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "outboxd_webhooks_total" && len(mf.GetMetric()) != 1 {
			t.Fatalf("%d series for unknown sources", len(mf.GetMetric()))
		}
	}
	if s := f.state(t); s != (pstate{}) {
		t.Fatalf("wrote %+v", s)
	}
}

// Item 12: encoded slashes and dot segments do not route to a source.
func TestEncodedPathsDoNotReachASource(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, nil)
	body := []byte(`{"n":1}`)
	ts := fmt.Sprint(time.Now().Unix())
	for _, path := range []string{"/webhooks/..%2fforms", "/webhooks/x%2fforms", "/webhooks/x%2Fforms", "/webhooks/x%5cforms",
		"/webhooks/%2e%2e/forms", "/webhooks/./forms"} {
		f.twice(t, 404, func() reply { return f.send(t, path, body, stdHeaders("Webhook", "evt_"+path, ts, body)) })
	}
	if r := f.send(t, "/webhooks/forms", body, stdHeaders("Webhook", "evt_ok", ts, body)); r.code != 200 {
		t.Fatalf("the plain path: %+v", r)
	}
	if s := f.state(t); s.effects != 1 {
		t.Fatalf("state %+v", s)
	}
}

// Item 14: values echoed in logs are cut short: a 1 MB timestamp header on
// an unsigned request, and a 1 MiB body rejected with a valid signature.
func TestLogsEchoBoundedValues(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, func(c *inbox.ReceiverConfig) {
		for i := range c.Sources {
			c.Sources[i].MaxBody = 2 << 20
		}
	})
	huge := strings.Repeat("9", 1<<20)
	for i := 0; i < 2; i++ {
		r := f.send(t, "/forms", []byte(`{}`), map[string]string{"Webhook-Id": "x", "Webhook-Timestamp": huge, "Webhook-Signature": "v1,AAAA"})
		if r.code != 401 {
			t.Fatalf("unsigned: %+v", r)
		}
	}
	// A validly signed body that is a 1 MiB JSON number, which the JSON
	// decoder's error quotes whole.
	bad := []byte("1" + strings.Repeat("0", 1<<20))
	f.twice(t, 422, func() reply { return f.send(t, "/stripe", bad, stripeHeaders(time.Now(), bad)) })
	if n := f.logs.Len(); n > 8<<10 {
		t.Fatalf("%d bytes of logs for 4 requests", n)
	}
}

// Item 15: signatures, tokens, keys and the like are never stored, by
// default and per source; other headers are.
func TestSecretsAreNotStored(t *testing.T) {
	t.Parallel()
	f := newPfix(t, &inbox.Config{
		SourceRedactHeaders: map[string][]string{"forms": {"X-Tenant"}},
		SourceKeepHeaders:   map[string][]string{"forms": {"X-Request-Key"}},
	}, nil)
	body := []byte(`{"n":1}`)
	h := stdHeaders("Webhook", "evt_secret", fmt.Sprint(time.Now().Unix()), body)
	secrets := []string{"Api-Key", "X-Access-Token", "X-Webhook-Secret", "X-Amz-Security-Token", "X-Forwarded-Authorization",
		"Authorization", "Cookie", "X-Password", "X-Tenant", "Paypal-Transmission-Sig", "Verif-Hash"}
	for _, name := range secrets {
		h[name] = "s3cr3t-" + name
	}
	h["X-Request-Key"], h["X-Trace"], h["I-Twilio-Idempotency-Token"] = "kept", "kept", "kept"
	f.twice(t, 200, func() reply { return f.send(t, "/forms", body, h) })
	ev, err := f.inbox.Get(context.Background(), f.pool, "forms", "evt_secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(secrets, "Webhook-Signature") {
		if ev.Headers.Get(name) != "" {
			t.Errorf("%s stored", name)
		}
	}
	for _, name := range []string{"X-Request-Key", "X-Trace", "I-Twilio-Idempotency-Token", "Webhook-Id", "Webhook-Timestamp", "Content-Type"} {
		if ev.Headers.Get(name) == "" && name != "Content-Type" {
			t.Errorf("%s not stored", name)
		}
	}
	var raw string
	if err := f.pool.QueryRow(context.Background(), `SELECT headers::text FROM outboxd.inbox_events`).Scan(&raw); err != nil || strings.Contains(raw, "s3cr3t") || strings.Contains(raw, "v1,") {
		t.Fatalf("stored headers %s %v", raw, err)
	}
	// A generic source's signature header, whatever its name, and
	// Shopify's, which names no "signature".
	cal := []byte(`{"kind":"x"}`)
	ch := calHeaders(time.Now(), cal)
	ch["X-Shopify-Hmac-Sha256"] = "c2VjcmV0"
	f.twice(t, 200, func() reply { return f.send(t, "/calendar", cal, ch) })
	stored, err := f.inbox.Get(context.Background(), f.pool, "calendar", inbox.BodyID(cal))
	if err != nil || stored.Headers.Get("X-Cal-Sig") != "" || stored.Headers.Get("X-Shopify-Hmac-Sha256") != "" || stored.Headers.Get("X-Cal-Timestamp") == "" {
		t.Fatalf("calendar headers %v %v", stored.Headers, err)
	}
}

// Item 16: the receiver caps the requests it serves at once; one beyond
// gets 503 with Retry-After instead of holding a connection.
func TestReceiverCapsConcurrentRequests(t *testing.T) {
	t.Parallel()
	f := newPfix(t, nil, func(c *inbox.ReceiverConfig) { c.MaxConcurrent = 2 })
	// A slow request that finds both slots taken (a probe below took one
	// for its moment) is refused at once: its handler returns, which this
	// wrapper reports, and the test dials a new one. Its 503 never reaches
	// the slow client (the server first drains the body it never sends),
	// so the handler's return is the only sign.
	refused := make(chan struct{}, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.rc.ServeHTTP(w, r)
		if r.Host == "slow" {
			select {
			case refused <- struct{}{}:
			default: // the end of the test closes them all; nobody reads
			}
		}
	}))
	t.Cleanup(srv.Close)
	f.srv = srv
	var slow []net.Conn
	dialSlow := func() {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /forms HTTP/1.1\r\nHost: slow\r\nContent-Length: 100\r\n\r\n{")
		slow = append(slow, conn)
	}
	// Two clients dribble their bodies and hold both slots.
	dialSlow()
	dialSlow()
	deadline := time.Now().Add(10 * time.Second)
	for { // until both slow requests hold their slots: unsigned probes get 401 until then
		r := f.send(t, "/forms", []byte(`{}`), nil)
		if r.code == http.StatusServiceUnavailable {
			break
		}
		for len(refused) > 0 {
			<-refused
			dialSlow()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cap never applied: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := []byte(`{}`)
	h := stdHeaders("Webhook", "evt_cap", fmt.Sprint(time.Now().Unix()), body)
	f.twice(t, 503, func() reply { return f.send(t, "/forms", body, h) })
	if r := f.send(t, "/forms", body, h); r.header.Get("Retry-After") == "" {
		t.Fatalf("no Retry-After: %+v", r)
	}
	if s := f.state(t); s.effects != 0 {
		t.Fatalf("state %+v", s)
	}
	// The slow clients go away: their slots are free again, and the event
	// the cap refused is processed (once, however often it comes).
	for _, c := range slow {
		c.Close()
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := f.send(t, "/forms", body, h)
		if r.code == http.StatusOK {
			break
		}
		if r.code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the slow clients left: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.twice(t, 200, func() reply { return f.send(t, "/forms", body, h) })
	if s := f.state(t); s.effects != 1 {
		t.Fatalf("state after the slots freed %+v", s)
	}
}
