package downstream_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/examples/crm-deals/downstream"
)

func TestHonoursIdempotencyKeyAndOutage(t *testing.T) {
	s := downstream.New()
	post := func(key string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/email/send", strings.NewReader(`{"to":"a@example.com"}`))
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := post("k1"); w.Code != 200 || w.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %v", w.Code, w.Header())
	}
	if w := post("k1"); w.Code != 200 || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat: %d %v", w.Code, w.Header())
	}
	if w := post(""); w.Code != 400 {
		t.Fatalf("no key: %d", w.Code)
	}
	s.SetOutage(true)
	if w := post("k2"); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("outage: %d", w.Code)
	}
	s.SetOutage(false)
	post("k2")
	sends := s.Sends()
	if len(sends) != 2 || sends[0].IdempotencyKey != "k1" || sends[1].IdempotencyKey != "k2" {
		t.Fatalf("sends %+v", sends)
	}
	if req, replays, refused := s.Stats(); req != 5 || replays != 1 || refused != 1 {
		t.Fatalf("stats %d %d %d", req, replays, refused)
	}
}
