package verify

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"
)

// idField reads the event id from a body field. A field that is there but
// empty, or not a string, is a malformed payload: keying such events on
// anything else would store and process them as new on every retry.
func idField(m map[string]any, key string) (string, error) {
	if key == "" {
		return "", nil
	}
	v, ok := m[key]
	if !ok {
		return "", nil
	}
	if s, isStr := v.(string); isStr && s != "" {
		return s, nil
	}
	return "", fmt.Errorf("%w: %q is empty or not a string", ErrPayload, key)
}

// idOrInteger is idField that also takes an integer, as the generic
// source's senders may number their events: its digits as sent (a float64
// would round ids past 2^53 into each other's), read from body again.
func idOrInteger(m map[string]any, body []byte, key string) (string, error) {
	if _, isNum := m[key].(float64); !isNum || key == "" {
		return idField(m, key)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err == nil {
		// The decoder keeps the last of repeated keys, as it did for m.
		if lit := string(raw[key]); integer.MatchString(lit) {
			return lit, nil
		}
	}
	return "", fmt.Errorf("%w: %q is a number but not an integer", ErrPayload, key)
}

var integer = regexp.MustCompile(`^-?[0-9]+$`)

// obj returns a nested JSON object, or nil.
func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// timeField reads an RFC 3339 time (GitHub, Shopify, Linear, Standard
// Webhooks payloads); zero when absent or unparsable.
func timeField(m map[string]any, key string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, str(m, key))
	if err != nil {
		return time.Time{}
	}
	return t
}

// unixField reads a JSON number of seconds (Stripe "created", Slack
// "event_time"); zero when absent or outside what a time can hold.
func unixField(m map[string]any, key string) time.Time {
	f, ok := m[key].(float64)
	if !ok || f <= 0 || f > math.MaxInt32*4 || f != math.Trunc(f) {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
