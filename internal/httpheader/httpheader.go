// Package httpheader tells whether a header can go out over HTTP at all, as
// net/http will check it when it sends: a name that is a token (RFC 9110),
// a value without control characters other than tab. Checking when a header
// is given (a message enqueued, a config read, a CLI flag) turns what would
// be a failed attempt repeated until the message dies into an error at once.
package httpheader

import (
	"net/textproto"
	"strconv"
	"strings"
)

// ValidName reports whether name is a token: visible ASCII without
// separators.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// ValidValue reports whether value holds no control character but tab (no
// line break, which would end the header).
func ValidValue(value string) bool {
	return !strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}

// Check describes a header of h that cannot be sent, naming it but never
// quoting its value (it may be a secret), or returns "" when all can.
func Check(h map[string][]string) string {
	for name, vs := range h {
		if !ValidName(name) {
			return "header name " + quote(name) + " is not a token (letters, digits and !#$%&'*+-.^_`|~ only)"
		}
		for _, v := range vs {
			if !ValidValue(v) {
				return "header " + name + ": the value holds a control character (a line break?)"
			}
		}
	}
	return ""
}

// setBySender are the headers a message cannot set: the destinations set
// them from the message (the idempotency key, the signature) or from the
// request (net/http writes Host, Content-Length, Transfer-Encoding and
// Trailer from the request itself and drops them from the header map).
// A message that set one would see it replaced without a word: an
// Idempotency-Key given so, kept by nobody, dedupes nothing.
var setBySender = map[string]string{
	"Idempotency-Key":   "the message's idempotency key: set IdempotencyKey (outboxd send --idempotency-key)",
	"Webhook-Id":        "the message's idempotency key, as the webhook id",
	"Webhook-Timestamp": "the time of each attempt",
	"Webhook-Signature": "the destination's signature",
	"Nats-Msg-Id":       "the message's idempotency key, for JetStream's dedupe",
	"Host":              "the destination URL's host",
	"Content-Length":    "the payload's length",
	"Transfer-Encoding": "the HTTP client",
	"Trailer":           "the HTTP client",
}

// SetBySender describes a header of h that outboxd sets itself on every
// attempt (naming what it is set from), or returns "" when none is.
func SetBySender(h map[string][]string) string {
	for name := range h {
		c := textproto.CanonicalMIMEHeaderKey(name)
		if from, ok := setBySender[c]; ok {
			return "header " + c + " is set on every attempt from " + from + "; a message cannot set it"
		}
	}
	return ""
}

// quote shows a bad name briefly and escaped: it may hold anything.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
