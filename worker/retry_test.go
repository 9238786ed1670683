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
	if got := p.Backoff(1, 5*time.Second); got != 5*time.Second {
		t.Fatalf("Retry-After 5s gave %s", got)
	}
}

// A Retry-After beyond the policy's Max is capped at Max (docs: "capped at
// max"), so a downstream cannot park a key for a year.
func TestRetryAfterIsCappedAtMax(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 8 * time.Second}.withDefaults()
	if got := p.Backoff(1, 365*24*time.Hour); got != 8*time.Second {
		t.Fatalf("Retry-After of a year gave %s, want the 8s max", got)
	}
}

func TestExhaustion(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, MaxAge: time.Hour}.withDefaults()
	if p.exhausted(2, 0) || !p.exhausted(3, 0) {
		t.Fatal("attempt budget")
	}
	if p.exhausted(1, 59*time.Minute) || !p.exhausted(1, 61*time.Minute) {
		t.Fatal("age limit")
	}
}
