package console

import "net/http"

// riverUIPrefix is where River UI is mounted.
const riverUIPrefix = "/riverui/"

// riverGuard lets only admins into River UI, whose API can cancel and
// delete jobs, and refuses its state-changing requests from another origin
// (River UI's own API carries no CSRF token of ours).
func (c *Console) riverGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if principalOf(r.Context()).Role != Admin {
			http.Error(w, "403 forbidden: River UI needs the admin role", http.StatusForbidden)
			return
		}
		if err := c.csrf.origin.Check(r); err != nil {
			http.Error(w, "403 forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
