package main

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// scrapeLogEvery is how often /metrics may log the same kind of problem:
// Prometheus scrapes every few seconds, and a problem that lasts would
// otherwise write a line at each scrape.
const scrapeLogEvery = time.Minute

// rateLog writes at most one warning per key and interval, and says how
// many it held back since the last one.
type rateLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newRateLog(log *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{log: log, every: every, now: time.Now, last: map[string]time.Time{}, held: map[string]int{}}
}

// warn logs msg with attrs unless a line for key went out within the
// interval.
func (l *rateLog) warn(key, msg string, attrs ...any) {
	l.mu.Lock()
	now := l.now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		l.held[key]++
		l.mu.Unlock()
		return
	}
	held := l.held[key]
	l.last[key], l.held[key] = now, 0
	l.mu.Unlock()
	if held > 0 {
		attrs = append(attrs, "held_back", held)
	}
	l.log.Warn(msg, attrs...)
}

// promhttpLog is promhttp's ErrorLog: the errors of a scrape that went on
// despite them (ContinueOnError).
type promhttpLog struct{ *rateLog }

// Println logs one of promhttp's errors.
func (l promhttpLog) Println(v ...any) {
	l.warn("promhttp", "/metrics: a collector failed; its series are missing from this scrape", "error", fmt.Sprint(v...))
}
