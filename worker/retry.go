package worker

import (
	"fmt"
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

// over fills p's zero fields from base.
func (p RetryPolicy) over(base RetryPolicy) RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = base.MaxAttempts
	}
	if p.MaxAge == 0 {
		p.MaxAge = base.MaxAge
	}
	if p.Base == 0 {
		p.Base = base.Base
	}
	if p.Max == 0 {
		p.Max = base.Max
	}
	return p.withDefaults()
}

func (p RetryPolicy) validate(field string) error {
	if p.MaxAttempts < 0 || p.MaxAge < 0 || p.Base < 0 || p.Max < 0 {
		return fmt.Errorf("worker: Config.%s: MaxAttempts, MaxAge, Base and Max must not be negative", field)
	}
	if p.Max < p.Base {
		return fmt.Errorf("worker: Config.%s: Max (%s) is shorter than Base (%s)", field, p.Max, p.Base)
	}
	return nil
}

// Backoff returns the delay before the attempt after attempt number n
// (counting from 1), honouring retryAfter up to Max. Zero fields take
// their defaults, as in New.
func (p RetryPolicy) Backoff(n int, retryAfter time.Duration) time.Duration {
	p = p.withDefaults()
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if d > 0 { // New refuses negative policies; an exported method must not panic on one
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
	return max(d, min(retryAfter, p.Max))
}

// exhausted reports whether a message that just failed its attempt n, at
// the given age (since it was created or requeued), must be dead-lettered
// rather than retried.
func (p RetryPolicy) exhausted(n int, age time.Duration) bool {
	return n >= p.MaxAttempts || age >= p.MaxAge
}
