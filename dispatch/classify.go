package dispatch

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ClassifyStatus maps an HTTP status code to an outcome: 2xx delivered;
// 408, 425, 429 and 5xx retry; 410 pauses the destination; any other code
// (other 4xx, and 3xx, since redirects are not followed) is dead.
func ClassifyStatus(code int) Outcome {
	switch {
	case code >= 200 && code < 300:
		return Delivered
	case code == http.StatusGone:
		return Pause
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500 && code < 600:
		return Retry
	default:
		return Dead
	}
}

// MaxRetryAfter is the longest wait ParseRetryAfter returns.
const MaxRetryAfter = time.Duration(math.MaxInt64)

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent or unreadable. Seconds past what a
// time.Duration holds (about 292 years) are MaxRetryAfter: a wish for a
// very long wait, which the dispatcher caps at its retry policy's Max (it
// was read as no wish, and the message retried at once).
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil && secs < 0:
		return 0
	case err == nil && secs <= int64(MaxRetryAfter/time.Second):
		return time.Duration(secs) * time.Second
	case err == nil, errors.Is(err, strconv.ErrRange) && v[0] != '-':
		return MaxRetryAfter // a number of seconds past what a Duration holds
	case errors.Is(err, strconv.ErrRange):
		return 0 // hugely negative
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
