package inbox

import (
	"net/http"
	"strings"
)

// defaultRedactedHeaders are never stored: they carry credentials. (The
// word rule below covers them but for Cookie's twin; they are listed so
// that SourceKeepHeaders cannot keep them.)
var defaultRedactedHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Api-Key", "X-Auth-Token",
}

// secretWords: a header whose name contains one of these is not stored
// unless a source keeps it explicitly. Signatures are among them: a stored
// signature with its body is a request anyone who can read the row can
// replay (inside the tolerance, or forever where the scheme has no
// timestamp).
// "sig" and "hash" catch schemes that spell them short (PayPal's
// Paypal-Transmission-Sig, Flutterwave's Verif-Hash).
var secretWords = []string{"token", "secret", "sig", "key", "auth", "cookie", "password", "hmac", "hash", "credential", "session"}

// defaultKeptHeaders are stored although a word above is in their name:
// they identify an event and prove nothing (Twilio's idempotency token is
// the event id).
var defaultKeptHeaders = []string{"I-Twilio-Idempotency-Token"}

type redactor struct {
	always map[string]bool            // every source
	extra  map[string]map[string]bool // per source
	keep   map[string]map[string]bool // per source, overriding secretWords
	// keptByDefault: defaultKeptHeaders, unless a source redacts them.
	keptByDefault map[string]bool
}

func newRedactor(c *Config) redactor {
	set := func(names []string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, h := range names {
			m[http.CanonicalHeaderKey(h)] = true
		}
		return m
	}
	r := redactor{always: set(append(append([]string(nil), defaultRedactedHeaders...), c.RedactHeaders...)),
		extra: map[string]map[string]bool{}, keep: map[string]map[string]bool{}, keptByDefault: set(defaultKeptHeaders)}
	for src, names := range c.SourceRedactHeaders {
		r.extra[src] = set(names)
	}
	for src, names := range c.SourceKeepHeaders {
		r.keep[src] = set(names)
	}
	return r
}

func (r redactor) redacted(source, name string) bool {
	name = http.CanonicalHeaderKey(name)
	if r.always[name] || r.extra[source][name] {
		return true
	}
	if r.keep[source][name] || r.keptByDefault[name] {
		return false
	}
	lower := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// headers returns what may be stored of h; NUL bytes, which jsonb cannot
// hold, are dropped from values.
func (r redactor) headers(source string, h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, v := range h {
		if r.redacted(source, k) {
			continue
		}
		vals := make([]string, len(v))
		for i, s := range v {
			vals[i] = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
		}
		out[strings.ToValidUTF8(strings.ReplaceAll(k, "\x00", ""), "\uFFFD")] = vals
	}
	return out
}
