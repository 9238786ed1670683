package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// CSRF defence, in two layers, on every state-changing request:
//
//  1. net/http's CrossOriginProtection refuses a cross-origin request by
//     the browser's Sec-Fetch-Site header, or Origin against Host where an
//     older browser sends no Sec-Fetch-Site.
//  2. A token bound to the user: HMAC-SHA256 under a key drawn when the
//     console starts, over the user's name and role. Forms carry it in a
//     hidden field, API clients in the X-CSRF-Token header. A page from
//     another origin can neither read it (no CORS) nor compute it. A
//     restart draws a new key, so an open form must be reloaded.
//
// Requests authenticated with a bearer token skip the token: browsers never
// attach one by themselves, so a forged request cannot carry it.

const csrfField = "csrf"
const csrfHeader = "X-CSRF-Token"

type csrf struct {
	key    []byte
	origin *http.CrossOriginProtection
}

func newCSRF() *csrf {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return &csrf{key: key, origin: http.NewCrossOriginProtection()}
}

func (c *csrf) token(p principal) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(p.Name + "\x00" + string(p.Role)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check refuses a state-changing request that fails either layer.
func (c *csrf) check(r *http.Request) bool {
	if err := c.origin.Check(r); err != nil {
		return false
	}
	p := principalOf(r.Context())
	if p.bearer {
		return true
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && hmac.Equal([]byte(got), []byte(c.token(p)))
}
