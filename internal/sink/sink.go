// Package sink is a recording HTTP downstream for tests and benchmarks: it
// keeps every request it receives and answers what Respond decides.
package sink

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Request is one request as the sink saw it.
type Request struct {
	At             time.Time
	IdempotencyKey string
	Payload        []byte
	Header         http.Header
	Status         int
}

// Sink records requests. Respond returns the status and extra headers for
// each request (200 when nil); it runs under no lock and may sleep.
type Sink struct {
	Respond func(r *http.Request, body []byte) (int, http.Header)
	// Observe, when set, sees each request and its answer before it is
	// recorded (for order checks).
	Observe func(Request)

	mu       sync.Mutex
	requests []Request
	inFlight int
	server   *httptest.Server
}

// Start serves the sink on a loopback port.
func Start() *Sink {
	s := &Sink{}
	s.server = httptest.NewServer(s)
	return s
}

// URL is the sink's address.
func (s *Sink) URL() string { return s.server.URL }

// Close stops the server.
func (s *Sink) Close() { s.server.Close() }

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	body, _ := io.ReadAll(r.Body)
	status, extra := http.StatusOK, http.Header(nil)
	if s.Respond != nil {
		status, extra = s.Respond(r, body)
	}
	req := Request{At: time.Now(), IdempotencyKey: r.Header.Get("Idempotency-Key"), Payload: body, Header: r.Header.Clone(), Status: status}
	if s.Observe != nil {
		s.Observe(req)
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	for k, v := range extra {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

// Requests returns every request so far.
func (s *Sink) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Accepted returns the requests answered 2xx.
func (s *Sink) Accepted() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// InFlight returns how many requests are being handled now.
func (s *Sink) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}
