// Package downstream is the fake "email API" and "sales chat" API bundled
// with the example: it honours Idempotency-Key the way real APIs do (the
// first request with a key is applied; a repeat gets the first answer and
// changes nothing), records what it would have sent, and can be put in an
// outage (503) to show retries, or made to refuse requests for good (422)
// to show dead letters.
package downstream

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
)

// Send is one applied request.
type Send struct {
	Path           string          `json:"path"`
	IdempotencyKey string          `json:"idempotency_key"`
	Body           json.RawMessage `json:"body"`
}

// Server is the fake downstream.
type Server struct {
	outage   atomic.Bool
	refuse   atomic.Bool
	mu       sync.Mutex
	sends    []Send
	seen     map[string]bool
	requests atomic.Int64
	replays  atomic.Int64
	refused  atomic.Int64
}

// New returns a downstream with nothing sent.
func New() *Server { return &Server{seen: map[string]bool{}} }

// SetOutage makes every request fail with 503 (true) or succeed again.
func (s *Server) SetOutage(on bool) { s.outage.Store(on) }

// SetRefusing makes every request fail with 422, a permanent refusal that
// the dispatcher dead-letters at once (true), or succeed again.
func (s *Server) SetRefusing(on bool) { s.refuse.Store(on) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/admin/sends":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Sends())
		return
	case r.Method == http.MethodPost && r.URL.Path == "/admin/outage":
		s.SetOutage(r.URL.Query().Get("on") == "1")
		return
	case r.Method != http.MethodPost:
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	s.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	if s.outage.Load() {
		s.refused.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	if s.refuse.Load() {
		s.refused.Add(1)
		http.Error(w, `{"error":"template rejected"}`, http.StatusUnprocessableEntity)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		http.Error(w, "Idempotency-Key required", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	replay := s.seen[r.URL.Path+" "+key]
	if !replay {
		s.seen[r.URL.Path+" "+key] = true
		s.sends = append(s.sends, Send{Path: r.URL.Path, IdempotencyKey: key, Body: json.RawMessage(body)})
	}
	s.mu.Unlock()
	if replay {
		s.replays.Add(1)
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"sent"}`)
}

// Sends returns what was applied, by path then key.
func (s *Server) Sends() []Send {
	s.mu.Lock()
	out := append([]Send(nil), s.sends...)
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].IdempotencyKey < out[j].IdempotencyKey
	})
	return out
}

// Stats counts requests: all of them, repeats of an applied key, and those
// refused during an outage.
func (s *Server) Stats() (requests, replays, refused int64) {
	return s.requests.Load(), s.replays.Load(), s.refused.Load()
}
