package worker

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterAndHonoursRetryAfter(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 8 * time.Second}.withDefaults()
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 8 * time.Second} {
		for range 50 {
			got := p.Backoff(n, 0)
			if got < want/2 || got > want {
				t.Fatalf("attempt %d: %s, want within [%s, %s]", n, got, want/2, want)
			}
		}
	}
	if got := p.Backoff(1, 30*time.Second); got != 30*time.Second {
		t.Fatalf("Retry-After 30s gave %s", got)
	}
}

func TestExhaustion(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, MaxAge: time.Hour}.withDefaults()
	now := time.Now()
	if p.exhausted(2, now, now) || !p.exhausted(3, now, now) {
		t.Fatal("attempt budget")
	}
	if p.exhausted(1, now.Add(-59*time.Minute), now) || !p.exhausted(1, now.Add(-61*time.Minute), now) {
		t.Fatal("age limit")
	}
}
