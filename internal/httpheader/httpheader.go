// Package httpheader tells whether a header can go out over HTTP at all, as
// net/http will check it when it sends: a name that is a token (RFC 9110),
// a value without control characters other than tab. Checking when a header
// is given (a message enqueued, a config read, a CLI flag) turns what would
// be a failed attempt repeated until the message dies into an error at once.
package httpheader

import (
	"fmt"
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
func Check(h map[string][]string) string { return check(h, false, false) }

// CheckMessage is Check for a message's headers, which also refuses an
// Idempotency-Key (below) and headers over MessageBytes, in the same
// pass: it runs on every enqueue.
func CheckMessage(h map[string][]string) string { return check(h, true, true) }

// CheckConfig is Check for the headers a destination adds to every
// request, which also refuses headers over MessageBytes: a trial's 70 kB
// token dead-lettered every message of its destination on a 431.
func CheckConfig(h map[string][]string) string { return check(h, false, true) }

// SentBytes is what a header line takes in a request: "Name: value" and
// a line break.
func SentBytes(name, value string) int { return len(name) + len(value) + 4 }

// Printable is a header name as an error may show it: quoted when it is
// not a token, briefly, up to its first colon (see quoteName).
func Printable(name string) string {
	if ValidName(name) {
		return name
	}
	return quoteName(name)
}

// MessageBytes bounds a message's headers as an HTTP request carries them
// ("Name: value" and a line break each): 64 KiB. HTTP servers refuse far
// less (nginx 8 kB a line by default, Node.js 16 kB in all), so a larger
// set would fail every attempt until it died, and a dispatcher holds the
// headers of every message it claims.
const MessageBytes = 64 << 10

func check(h map[string][]string, message, bounded bool) string {
	size := 0
	for name, vs := range h {
		if !ValidName(name) {
			return "header name " + quoteName(name) + " is not a token (letters, digits and !#$%&'*+-.^_`|~ only)"
		}
		if message && len(name) == len(idempotencyKey) && strings.EqualFold(name, idempotencyKey) {
			return idempotencyKeyRefused
		}
		for _, v := range vs {
			if !ValidValue(v) {
				return "header " + name + ": the value holds a control character (a line break?)"
			}
			size += SentBytes(name, v)
		}
	}
	if bounded && size > MessageBytes {
		return fmt.Sprintf("the headers take %d bytes as sent, more than %d (64 KiB; HTTP servers refuse far less)", size, MessageBytes)
	}
	return ""
}

// A message's key is its IdempotencyKey field: every destination sends
// that one (the HTTP destination in the Idempotency-Key header, replacing
// the message's; NATS as the JetStream message id), so a key given as a
// header dedupes nothing, and two sends with one such header reached a
// trial's sink twice, under two keys.
const (
	idempotencyKey        = "Idempotency-Key"
	idempotencyKeyRefused = "header Idempotency-Key is the message's idempotency key, sent by every destination: set IdempotencyKey (outboxd send --idempotency-key), not a header"
)

// setByHTTP are the headers the HTTP destination sets on every request,
// whatever a message or its config gives: from the message (its key, as
// Idempotency-Key and Webhook-Id), the time of the attempt, or the request
// itself (net/http writes Host, Content-Length, Transfer-Encoding and
// Trailer from the request and drops them from the header map).
// Webhook-Signature too, when the destination has a secret (SetByHTTP).
var setByHTTP = map[string]string{
	"Idempotency-Key":   "the message's idempotency key",
	"Webhook-Id":        "the message's idempotency key",
	"Webhook-Timestamp": "the time of each attempt",
	"Host":              "the URL's host",
	"Content-Length":    "the payload's length",
	"Transfer-Encoding": "the HTTP client",
	"Trailer":           "the HTTP client",
}

// SetByHTTP describes a header name that the HTTP destination sets on
// every request itself (naming from what), or returns "". signs: the
// destination has a secret, and so sets Webhook-Signature too.
func SetByHTTP(name string, signs bool) string {
	if set := setBy(name, signs); set != "" {
		return set + "; a configured value would be replaced"
	}
	return ""
}

// SentByHTTP is SetByHTTP for a header given with one message (outboxd
// send --header), whose destination's secret is not known.
func SentByHTTP(name string) string {
	if set := setBy(name, false); set != "" {
		return set + " (the HTTP destination's; a value given here would not be sent)"
	}
	return ""
}

func setBy(name string, signs bool) string {
	c := textproto.CanonicalMIMEHeaderKey(name)
	from, ok := setByHTTP[c]
	if !ok && signs && c == "Webhook-Signature" {
		from, ok = "its secret", true
	}
	if ok {
		return "header " + c + " is set on every request from " + from
	}
	return ""
}

// quote shows a bad name briefly and escaped: it may hold anything.
// quoteName quotes a refused header name up to its first colon: a name
// holding one is most likely "Name: value" given as a name, and the value
// may be a token.
func quoteName(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 && i < len(name)-1 {
		return quote(name[:i+1]) + "..."
	}
	return quote(name)
}

func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
