// Package httpheader tells whether a header can go out over HTTP at all, as
// net/http will check it when it sends: a name that is a token (RFC 9110),
// a value without control characters other than tab. Checking when a header
// is given (a message enqueued, a config read, a CLI flag) turns what would
// be a failed attempt repeated until the message dies into an error at once.
package httpheader

import (
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

// quote shows a bad name briefly and escaped: it may hold anything.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
