package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// sink is a lean recording HTTP downstream: it remembers when each
// idempotency key first arrived and counts every request.
type sink struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	first    map[string]time.Time
}

func newSink() *sink {
	s := &sink{first: map[string]time.Time{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		s.requests.Add(1)
		if key := r.Header.Get("Idempotency-Key"); key != "" {
			s.mu.Lock()
			if _, ok := s.first[key]; !ok {
				s.first[key] = now
			}
			s.mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	return s
}

func (s *sink) reset() {
	s.mu.Lock()
	s.first = map[string]time.Time{}
	s.mu.Unlock()
	s.requests.Store(0)
}

func (s *sink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.first)
}

func (s *sink) firstAt(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.first[key]
	return t, ok
}
