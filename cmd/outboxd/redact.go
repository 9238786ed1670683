package main

import (
	"log/slog"
	"regexp"
)

// Passwords in connection strings never reach the terminal or the logs,
// whatever library wrote the message: URLs (scheme://user:password@host) and
// keyword/value strings (password=...).
//
// In a URL, everything up to the last @ is user info: a password may hold
// an unencoded @, and user info without a colon is often a token
// (nats://TOKEN@host), so all of it but a user name before a colon goes.
// A keyword value may hold backslash-escaped spaces or be quoted.
var (
	urlPassword = regexp.MustCompile("([a-zA-Z][a-zA-Z0-9+.-]*://)(?:([^/?#\\s@:\"'`]*):)?[^\\s\"'`]*@")
	kvPassword  = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|[^\s'\\])+)`)
)

const redacted = "xxxxx"

// redact removes passwords from a message meant for people.
func redact(s string) string {
	s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
		g := urlPassword.FindStringSubmatch(m)
		if g[2] != "" {
			return g[1] + g[2] + ":" + redacted + "@"
		}
		return g[1] + redacted + "@"
	})
	return kvPassword.ReplaceAllString(s, "${1}"+redacted)
}

// redactAttr is a slog ReplaceAttr that redacts strings and errors, and
// writes durations as people read them ("30s", not nanoseconds).
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(redact(a.Value.String()))
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(redact(err.Error()))
		}
	case slog.KindBool, slog.KindFloat64, slog.KindInt64, slog.KindUint64, slog.KindTime:
		// nothing that could hold a secret
	case slog.KindGroup, slog.KindLogValuer:
		// never seen here: slog calls ReplaceAttr on each member of a group,
		// with its value resolved
	}
	return a
}
