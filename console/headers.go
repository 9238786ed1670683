package console

import (
	"net/http"
	"strings"
)

// contentSecurityPolicy allows only the console's own stylesheet: no
// script at all (the pages work without), no framing, forms posting only
// back to the console.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// riverUIPolicy lets River UI's own scripts run, and the inline styles
// they set (its React components do; the browser test shows the app
// blank without), nothing from elsewhere, never framed.
const riverUIPolicy = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// securityHeaders sets the headers every response carries. Pages and API
// answers hold operational data, so nothing is cached.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if strings.HasPrefix(r.URL.Path, riverUIPrefix) {
			// River UI is a single-page app: its own scripts and API
			// calls, same origin only.
			h.Set("Content-Security-Policy", riverUIPolicy)
		} else {
			h.Set("Content-Security-Policy", contentSecurityPolicy)
		}
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
