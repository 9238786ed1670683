// Package loglimit keeps repeated log lines of one kind to one per
// interval, so that an outage, or a flood of bad requests, writes a few
// lines that count the rest instead of one per event.
package loglimit

import (
	"sync"
	"time"
)

// Limiter lets one line per key through per Every and counts the rest.
// Keys must come from a bounded set (a destination, a configured source):
// the limiter remembers each. The zero value lets every line through.
type Limiter struct {
	Every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

// Allow reports whether a line for key may be written now, and how many
// were held back since the last one.
func (l *Limiter) Allow(key string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.Every {
		l.held[key]++
		return false, 0
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return true, n
}
