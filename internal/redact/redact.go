// Package redact removes secrets from free text meant for people: log lines,
// error messages, and the error text stored with delivery attempts (which
// the console shows), whatever library or user code wrote it.
package redact

import "regexp"

// In a URL, everything up to the last @ is user info: a password may hold
// an unencoded @, and user info without a colon is often a token
// (nats://TOKEN@host), so all of it but a user name before a colon goes.
// A keyword value may hold backslash-escaped spaces or be quoted. A token
// follows "Bearer" or an Authorization header (after its scheme, if any).
var (
	urlPassword = regexp.MustCompile("([a-zA-Z][a-zA-Z0-9+.-]*://)(?:([^/?#\\s@:\"'`]*):)?[^\\s\"'`]*@")
	kvPassword  = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|[^\s'\\])+)`)
	authHeader  = regexp.MustCompile("(?i)(\\bauthorization\\s*[:=]\\s*(?:[a-z]+\\s+)?)[^\\s\"'`,;]+")
	bearer      = regexp.MustCompile("(?i)(\\bbearer\\s+)[^\\s\"'`,;]+")
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
	s = authHeader.ReplaceAllString(s, "${1}"+Redacted)
	return bearer.ReplaceAllString(s, "${1}"+Redacted)
}
