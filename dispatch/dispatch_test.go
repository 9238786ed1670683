package dispatch_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/dispatch/dispatchtest"
)

// The published Standard Webhooks vector, as used by Svix's own library
// tests (svix-webhooks, php/tests/WebhookTest.php testSignFunctionWorks):
// a receiver's stock library must verify what we send.
func TestSignerMatchesStandardWebhooksVector(t *testing.T) {
	s, err := dispatch.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	for _, bad := range []string{"whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := dispatch.NewSigner(bad); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	for code, want := range map[int]dispatch.Outcome{
		200: dispatch.Delivered, 201: dispatch.Delivered, 204: dispatch.Delivered,
		301: dispatch.Dead, 400: dispatch.Dead, 401: dispatch.Dead, 404: dispatch.Dead, 422: dispatch.Dead,
		408: dispatch.Retry, 425: dispatch.Retry, 429: dispatch.Retry,
		500: dispatch.Retry, 502: dispatch.Retry, 503: dispatch.Retry, 504: dispatch.Retry,
		410: dispatch.Pause,
	} {
		if got := dispatch.ClassifyStatus(code); got != want {
			t.Errorf("%d: %s, want %s", code, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"2": 2 * time.Second, "0": 0, "": 0, "-5": 0, "soon": 0,
		// Past a Duration: the longest wait, not none (the dispatcher
		// caps it at its policy's Max; it retried at once).
		"99999999999999999999": dispatch.MaxRetryAfter, "9300000000": dispatch.MaxRetryAfter,
		"9223372036": 9223372036 * time.Second,
		"+5":         5 * time.Second, "-99999999999999999999": 0,
		"Sat, 28 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Sat, 28 Nov 2026 11:00:00 GMT": 0,
	} {
		if got := dispatch.ParseRetryAfter(in, now); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// sink records what an HTTP downstream receives.
type sink struct {
	mu       sync.Mutex
	received []dispatchtest.Received
	headers  []http.Header
	status   int
	extra    http.Header
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.received = append(s.received, dispatchtest.Received{IdempotencyKey: r.Header.Get("Idempotency-Key"), Payload: body})
	s.headers = append(s.headers, r.Header.Clone())
	status, extra := s.status, s.extra
	s.mu.Unlock()
	for k, v := range extra {
		w.Header()[k] = v
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, strings.Repeat("x", 3000))
}

func (s *sink) snapshot() []dispatchtest.Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dispatchtest.Received(nil), s.received...)
}

func newHTTP(t *testing.T, cfg dispatch.HTTPConfig) (*dispatch.HTTP, *sink) {
	t.Helper()
	s := &sink{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	d, err := dispatch.NewHTTP(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}

func TestHTTPConformance(t *testing.T) {
	dispatchtest.Run(t, func(t *testing.T) dispatchtest.Subject {
		d, s := newHTTP(t, dispatch.HTTPConfig{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
		return dispatchtest.Subject{Destination: d, Received: s.snapshot}
	})
}

func TestMemoryConformance(t *testing.T) {
	dispatchtest.Run(t, func(t *testing.T) dispatchtest.Subject {
		m := &dispatch.Memory{}
		return dispatchtest.Subject{Destination: m, Received: func() []dispatchtest.Received {
			var out []dispatchtest.Received
			for _, d := range m.Deliveries() {
				out = append(out, dispatchtest.Received{IdempotencyKey: d.IdempotencyKey, Payload: d.Payload})
			}
			return out
		}}
	})
}

func TestHTTPHeadersAndResignedAttempts(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	d, s := newHTTP(t, dispatch.HTTPConfig{Secret: secret, Headers: http.Header{"Authorization": {"Bearer t0k"}}})
	msg := dispatch.Message{IdempotencyKey: "key-1", Payload: []byte(`{"a":1}`), Headers: http.Header{"X-Trace": {"t1"}}}
	for i := 0; i < 2; i++ {
		if res := d.Deliver(context.Background(), msg); res.Outcome != dispatch.Delivered || res.StatusCode != 200 {
			t.Fatalf("attempt %d: %s", i, res)
		}
		if i == 0 {
			time.Sleep(1100 * time.Millisecond) // a new second, a new timestamp
		}
	}
	signer, _ := dispatch.NewSigner(secret)
	var stamps []string
	for _, h := range s.headers {
		if h.Get("Idempotency-Key") != "key-1" || h.Get("Webhook-Id") != "key-1" {
			t.Fatalf("keys: %v", h)
		}
		if h.Get("Authorization") != "Bearer t0k" || h.Get("X-Trace") != "t1" || h.Get("Content-Type") != "application/json" {
			t.Fatalf("headers: %v", h)
		}
		stamps = append(stamps, h.Get("Webhook-Timestamp"))
		unix, err := strconv.ParseInt(h.Get("Webhook-Timestamp"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if want := signer.Sign("key-1", time.Unix(unix, 0), msg.Payload); h.Get("Webhook-Signature") != want {
			t.Fatalf("signature %q, want %q", h.Get("Webhook-Signature"), want)
		}
	}
	if stamps[0] == stamps[1] {
		t.Fatalf("both attempts stamped %s: attempts must be re-signed", stamps[0])
	}
}

func TestHTTPOutcomes(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       dispatch.Outcome
		wantAfter  time.Duration
	}{
		{200, "", dispatch.Delivered, 0},
		{429, "2", dispatch.Retry, 2 * time.Second},
		{503, "7", dispatch.Retry, 7 * time.Second},
		{500, "", dispatch.Retry, 0},
		{400, "", dispatch.Dead, 0},
		{410, "", dispatch.Pause, 0},
		{302, "", dispatch.Dead, 0},
	} {
		d, s := newHTTP(t, dispatch.HTTPConfig{MaxResponseBody: 100})
		s.status = tc.status
		if tc.retryAfter != "" {
			s.extra = http.Header{"Retry-After": {tc.retryAfter}, "Location": {"http://elsewhere.invalid/"}}
		} else {
			s.extra = http.Header{"Location": {"http://elsewhere.invalid/"}}
		}
		res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k", Payload: []byte("{}")})
		if res.Outcome != tc.want || res.StatusCode != tc.status || res.RetryAfter != tc.wantAfter {
			t.Errorf("HTTP %d: %+v", tc.status, res)
		}
		if len(res.Body) != 100 {
			t.Errorf("HTTP %d: kept %d bytes of body, want 100", tc.status, len(res.Body))
		}
	}
}

func TestHTTPTransportFailuresRetry(t *testing.T) {
	// A server that never answers: the per-destination timeout applies.
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	d, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: srv.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k"})
	if res.Outcome != dispatch.Retry || res.Err == nil || !strings.Contains(res.Err.Error(), "timeout") {
		t.Fatalf("timeout: %+v", res)
	}
	// Nothing listens on the port: connection refused.
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	d, _ = dispatch.NewHTTP(&dispatch.HTTPConfig{URL: url})
	if res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k"}); res.Outcome != dispatch.Retry {
		t.Fatalf("refused: %+v", res)
	}
}

func TestHTTPConcurrencyAndRateLimits(t *testing.T) {
	var (
		mu            sync.Mutex
		inFlight, max int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		if inFlight > max {
			max = inFlight
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer srv.Close()
	d, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: srv.URL, MaxConcurrency: 3, Rate: 50, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k"})
		}()
	}
	wg.Wait()
	if max > 3 {
		t.Errorf("%d requests in flight, limit 3", max)
	}
	// 20 requests at 50/s with a burst of 1 need at least 19/50 s.
	if el := time.Since(start); el < 380*time.Millisecond {
		t.Errorf("20 requests took %s: the rate limit was not applied", el)
	}
}

func TestNewHTTPValidates(t *testing.T) {
	for _, cfg := range []dispatch.HTTPConfig{{URL: "ftp://x"}, {URL: "http://x", Secret: "nope!"}, {URL: "http://x", Rate: -1},
		// Set by every request: a configured value would be replaced.
		{URL: "http://x", Headers: http.Header{"idempotency-key": {"fixed"}}}, {URL: "http://x", Headers: http.Header{"Host": {"y"}}},
		{URL: "http://x", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Headers: http.Header{"Webhook-Signature": {"v1,x"}}}} {
		if _, err := dispatch.NewHTTP(&cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// Headers added to every request take at most 64 KiB as sent, as a
// message's do: a trial's 70 kB token was accepted, and every message of
// its destination died on the server's 431. The error gives sizes, never
// the value (a token).
func TestNewHTTPBoundsItsHeaders(t *testing.T) {
	header := func(total int) http.Header {
		return http.Header{"X-Tok": {"S" + strings.Repeat("s", total-len("X-Tok")-5)}}
	}
	if _, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "http://x", Headers: header(64 << 10)}); err != nil {
		t.Fatalf("headers of 64 KiB: %v", err)
	}
	_, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "http://x", Headers: header(64<<10 + 1)})
	if err == nil || !strings.Contains(err.Error(), "the headers take 65537 bytes as sent, more than 65536") || strings.Contains(err.Error(), "Ss") {
		t.Fatalf("headers one byte over 64 KiB: %v", err)
	}
	if _, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "http://x", Headers: http.Header{"X-Bad": {"a\nb"}}}); err == nil {
		t.Fatal("a header value with a line break accepted")
	}
}

// A missing URL, nil config included, is an error that names the field,
// never a panic.
func TestNewHTTPNamesTheRequiredURL(t *testing.T) {
	for _, cfg := range []*dispatch.HTTPConfig{nil, {}} {
		_, err := dispatch.NewHTTP(cfg)
		if err == nil || !strings.Contains(err.Error(), "HTTPConfig.URL is required") {
			t.Errorf("NewHTTP(%+v): %v, want an error naming HTTPConfig.URL", cfg, err)
		}
	}
}

// NewHTTP fills its defaults in a copy: a config shared by several
// destinations is left as the caller wrote it.
func TestNewHTTPLeavesTheConfigAlone(t *testing.T) {
	cfg := dispatch.HTTPConfig{URL: "http://127.0.0.1:1"}
	if _, err := dispatch.NewHTTP(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 0 || cfg.MaxConcurrency != 0 || cfg.MaxResponseBody != 0 || cfg.Client != nil {
		t.Fatalf("NewHTTP changed its config: %+v", cfg)
	}
}

// A Result is a value, not an error: were it one, a delivered result
// could be returned or wrapped as a failure.
func TestResultIsNotAnError(t *testing.T) {
	if _, ok := any(dispatch.Result{Outcome: dispatch.Delivered}).(error); ok {
		t.Fatal("dispatch.Result implements error")
	}
	r := dispatch.Result{Outcome: dispatch.Retry, StatusCode: 503, Err: errors.New("busy")}
	if got := r.String(); got != "retry (HTTP 503) busy" {
		t.Fatalf("String() = %q", got)
	}
}

// A message's own headers may be written in any case (an http.Header map
// literal keeps what it is given): they are sent under their canonical
// names, so ours still replace theirs and the downstream sees one
// Idempotency-Key, the one every retry carries, not two differently cased
// ones; a Content-Type of theirs still wins over our default.
func TestHTTPMessageHeadersInAnyCase(t *testing.T) {
	d, s := newHTTP(t, dispatch.HTTPConfig{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	msg := dispatch.Message{IdempotencyKey: "key-1", Payload: []byte(`{}`), Headers: http.Header{
		"idempotency-key":   {"theirs"},
		"webhook-signature": {"v1,forged"},
		"content-type":      {"application/vnd.crm+json"},
		"x-trace":           {"t1"},
	}}
	if res := d.Deliver(context.Background(), msg); res.Outcome != dispatch.Delivered {
		t.Fatalf("deliver: %s", res)
	}
	h := s.headers[0]
	for name, want := range map[string]string{"Idempotency-Key": "key-1", "Content-Type": "application/vnd.crm+json", "X-Trace": "t1"} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want only %q", name, got, want)
		}
	}
	if got := h.Values("Webhook-Signature"); len(got) != 1 || got[0] == "v1,forged" {
		t.Errorf("Webhook-Signature: %q, want only ours", got)
	}
}

// A stored message whose header net/http would refuse on every attempt (a
// row not written through Enqueue, which refuses it) is a dead letter at
// once, without a request, and the error never quotes the value.
func TestHTTPUnsendableHeaderIsDead(t *testing.T) {
	d, s := newHTTP(t, dispatch.HTTPConfig{})
	for _, h := range []http.Header{
		{"X-Token": {"s3cr3t\r\nX-Injected: 1"}},
		{"Bad Name": {"v"}},
	} {
		res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k", Payload: []byte(`{}`), Headers: h})
		if res.Outcome != dispatch.Dead || res.Err == nil || strings.Contains(res.Err.Error(), "s3cr3t") {
			t.Errorf("%q: %s", h, res)
		}
	}
	if n := len(s.snapshot()); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}
