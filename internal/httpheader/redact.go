package httpheader

import (
	"net/http"
	"strings"
)

// Sensitive names headers whose values are never shown (the console,
// `outboxd outbox show`): the inbox drops credentials before storing, but
// outbox headers are the producer's, and may carry an API key.
func Sensitive(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, part := range []string{"secret", "token", "signature", "api-key", "api_key", "apikey", "access-key", "private-key",
		"subscription-key", "functions-key", "password", "credential", "session", "auth"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// Redacted is h with the values of Sensitive headers replaced by
// "[redacted]"; h is not modified.
func Redacted(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if Sensitive(k) {
			out[k] = []string{"[redacted]"}
			continue
		}
		out[k] = vs
	}
	return out
}
