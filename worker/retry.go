package worker

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy decides when a failed message is tried again and when it is
// dead-lettered.
type RetryPolicy struct {
	// MaxAttempts before the message is dead-lettered. Default 25.
	MaxAttempts int
	// MaxAge: a message older than this is dead-lettered at its next failure
	// instead of retried. Default 72 h.
	MaxAge time.Duration
	// Base is the first backoff; each further attempt doubles it, up to Max.
	// Defaults 1 s and 1 h. The actual delay is drawn from [d/2, d] (jitter),
	// and is never shorter than the destination's Retry-After, which is
	// itself capped at Max: a downstream cannot park a message longer.
	Base, Max time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 25
	}
	if p.MaxAge == 0 {
		p.MaxAge = 72 * time.Hour
	}
	if p.Base == 0 {
		p.Base = time.Second
	}
	if p.Max == 0 {
		p.Max = time.Hour
	}
	return p
}

// Backoff returns the delay before the attempt after attempt number n
// (counting from 1), honouring retryAfter up to Max.
func (p RetryPolicy) Backoff(n int, retryAfter time.Duration) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	return max(d, min(retryAfter, p.Max))
}

// exhausted reports whether a message that just failed its attempt n, at
// the given age (since it was created or requeued), must be dead-lettered
// rather than retried.
func (p RetryPolicy) exhausted(n int, age time.Duration) bool {
	return n >= p.MaxAttempts || age >= p.MaxAge
}
