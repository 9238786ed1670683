package verify

import (
	"fmt"
	"time"
)

// withinUnix checks a timestamp of v units (time.Second, time.Millisecond)
// since the epoch against now, with a tolerance inclusive at the edge in
// both directions. v comes straight from the request and may be any int64,
// so it is compared with the window's bounds in its own unit: subtracting it
// from now could overflow and wrap a timestamp centuries away (or one in
// milliseconds where seconds are expected) into the window.
func withinUnix(v int64, unit time.Duration, now time.Time, tolerance time.Duration) (time.Time, error) {
	// In the timestamp's own unit, as the providers' SDKs compare: a
	// request signed exactly tolerance ago is in, whatever the fraction of
	// the current second.
	now = now.Truncate(unit)
	u := int64(unit)
	lo := ceilDiv(now.Add(-tolerance).UnixNano(), u)
	hi := floorDiv(now.Add(tolerance).UnixNano(), u)
	switch {
	case v < lo:
		return time.Time{}, fmt.Errorf("%w: signed more than %s ago", ErrTimestamp, tolerance)
	case v > hi:
		return time.Time{}, fmt.Errorf("%w: signed more than %s in the future", ErrTimestamp, tolerance)
	}
	return time.Unix(0, v*u), nil // in the window, so v*u cannot overflow
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// quote echoes a value from the request in an error message, cut short: a
// header can be a megabyte, and errors end up in logs.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
