// Package redact removes secrets from free text meant for people: log lines,
// error messages, and the error text stored with delivery attempts (which
// the console shows), whatever library or user code wrote it.
package redact

import (
	"regexp"
	"strings"
)

// In a URL, everything up to the last @ is user info: a password may hold
// an unencoded @, and user info without a colon is often a token
// (nats://TOKEN@host), so all of it but a user name before a colon goes.
// A keyword value may hold backslash-escaped spaces or be quoted. A token
// follows "Bearer" or an Authorization header (after its scheme, if any);
// only a word that looks like one goes, so that prose ("bearer token",
// "Authorization: environment variable ... is not set") stays readable.
var (
	urlPassword = regexp.MustCompile("([a-zA-Z][a-zA-Z0-9+.-]*://)(?:([^/?#\\s@:\"'`]*):)?[^\\s\"'`]*@")
	kvPassword  = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|[^\s'\\])+)`)
	authHeader  = regexp.MustCompile("(?i)(\\bauthorization\\s*[:=]\\s*(?:(?:basic|bearer|digest|token)\\s+)?)([^\\s\"'`,;]+)")
	bearer      = regexp.MustCompile("(?i)(\\bbearer\\s+)([^\\s\"'`,;]+)")
)

// Redacted replaces each secret.
const Redacted = "xxxxx"

// Secrets returns s with passwords and tokens replaced by Redacted.
func Secrets(s string) string {
	s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
		g := urlPassword.FindStringSubmatch(m)
		if g[2] != "" {
			return g[1] + g[2] + ":" + Redacted + "@"
		}
		return g[1] + Redacted + "@"
	})
	s = kvPassword.ReplaceAllString(s, "${1}"+Redacted)
	s = replaceTokens(authHeader, s)
	return replaceTokens(bearer, s)
}

// replaceTokens redacts re's second group where it looks like a token.
func replaceTokens(re *regexp.Regexp, s string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		g := re.FindStringSubmatch(m)
		if !tokenLike(g[2]) {
			return m
		}
		return g[1] + Redacted
	})
}

// tokenLike: generated tokens are long and hold digits or base64 and JWT
// punctuation; words rarely do.
func tokenLike(w string) bool {
	return len(w) >= 8 && strings.ContainsAny(w, "0123456789._~+/=")
}
