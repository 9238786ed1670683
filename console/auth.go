package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// principal is who made a request, once authenticated.
type principal struct {
	Name string
	Role Role
	// bearer is true when the credential was a bearer token, which a
	// browser never sends on its own: such requests need no CSRF token.
	bearer bool
}

type principalKey struct{}

func principalOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// credential is a user with the SHA-256 of their secret: comparing digests
// in constant time reveals neither the secret nor its length.
type credential struct {
	user   User
	digest [32]byte
}

type authenticator struct {
	open     bool
	basic    []credential // by name and password
	bearer   []credential // by token
	anyBasic bool
}

func newAuthenticator(cfg *Config) *authenticator {
	a := &authenticator{open: cfg.InsecureNoAuth}
	for _, u := range cfg.Users {
		if u.Password != "" {
			a.basic = append(a.basic, credential{user: u, digest: sha256.Sum256([]byte(u.Name + "\x00" + u.Password))})
		} else {
			a.bearer = append(a.bearer, credential{user: u, digest: sha256.Sum256([]byte(u.Token))})
		}
	}
	a.anyBasic = len(a.basic) > 0
	return a
}

// authenticate finds the request's user. Every candidate is compared, so
// the time taken does not say which one matched.
func (a *authenticator) authenticate(r *http.Request) (principal, bool) {
	if a.open {
		return principal{Name: "anonymous", Role: Admin}, true
	}
	var (
		list   []credential
		digest [32]byte
		bearer bool
	)
	if user, pass, ok := r.BasicAuth(); ok {
		list, digest = a.basic, sha256.Sum256([]byte(user+"\x00"+pass))
	} else if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") && tok != "" {
		list, digest, bearer = a.bearer, sha256.Sum256([]byte(tok)), true
	} else {
		return principal{}, false
	}
	var found *User
	for i := range list {
		if subtle.ConstantTimeCompare(list[i].digest[:], digest[:]) == 1 {
			found = &list[i].user
		}
	}
	if found == nil {
		return principal{}, false
	}
	return principal{Name: found.Name, Role: found.Role, bearer: bearer}, true
}

// middleware answers 401 to a request without valid credentials, and puts
// the principal in the context of the others.
func (a *authenticator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.open && !loopbackHost(r.Host) {
			// Without credentials, a page of any site could reach the
			// console through a name it resolves to 127.0.0.1 (DNS
			// rebinding): only a loopback name is served.
			http.Error(w, "403 forbidden: without credentials (insecure_no_auth) the console answers only to localhost, 127.0.0.1 or [::1]", http.StatusForbidden)
			return
		}
		p, ok := a.authenticate(r)
		if !ok {
			if a.anyBasic {
				w.Header().Set("WWW-Authenticate", `Basic realm="outboxd console", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="outboxd console"`)
			}
			http.Error(w, "401 unauthorized: sign in with the console's credentials", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// loopbackHost reports whether a Host header names this machine's loopback:
// localhost, 127.0.0.0/8 or ::1, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
