package console_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/internal/pgtest"
)

func TestNewRefusesAnOpenConsoleByAccident(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	for _, cfg := range []*console.Config{nil, {}} {
		_, err := console.New(pool, cfg)
		if !errors.Is(err, console.ErrNoAuth) || !strings.Contains(err.Error(), "Config.Users is required") {
			t.Fatalf("New(pool, %+v): %v, want ErrNoAuth naming Config.Users", cfg, err)
		}
	}
	if _, err := console.New(nil, &console.Config{InsecureNoAuth: true}); err == nil || !strings.Contains(err.Error(), "needs a pool") {
		t.Fatalf("New(nil pool): %v, want an error naming the pool", err)
	}
	_, err := console.New(pool, &console.Config{Users: []console.User{{Name: "ada", Role: console.Admin, Password: "s3cret-pw", Token: "t0ken-abc"}}})
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(err.Error(), "t0ken-abc") {
		t.Fatalf("both password and token: %v (want an error that quotes neither)", err)
	}
	for _, short := range []console.User{{Name: "ada", Role: console.Admin, Password: "short"}, {Name: "bot", Role: console.Admin, Token: "x"},
		{Name: "bot", Role: console.Viewer, Token: "eleven-byte"}} {
		if _, err := console.New(pool, &console.Config{Users: []console.User{short}}); err == nil || !strings.Contains(err.Error(), "want at least 12") ||
			strings.Contains(err.Error(), short.Password+short.Token) {
			t.Errorf("%+v: %v; want it refused, the credential not quoted", short, err)
		}
	}
	if _, err := console.New(pool, &console.Config{Users: []console.User{{Name: "ada", Role: "root", Password: "x"}}}); err == nil {
		t.Fatal("unknown role accepted")
	}
	if _, err := console.New(pool, &console.Config{InsecureNoAuth: true}); err != nil {
		t.Fatalf("insecure_no_auth: %v", err)
	}
}

func TestEveryRequestNeedsCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/", "/events", "/api/events", "/api/destinations", "/static/console.css", "/messages/0190a8c2-0000-7000-8000-000000000000"} {
		for _, auth := range []string{"", "basic:ada:wrong", "basic:nobody:" + adminPass, "bearer:wrong", "bearer:" + adminPass, "basic:ada:" + adminToken} {
			r := b.do(t, http.MethodGet, path, auth, nil, nil)
			if r.code != http.StatusUnauthorized {
				t.Fatalf("GET %s with %q: %d, want 401", path, auth, r.code)
			}
			if !strings.HasPrefix(r.h.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("401 without a Basic challenge: %q", r.h.Get("WWW-Authenticate"))
			}
		}
	}
	for _, auth := range []string{"basic:ada:" + adminPass, "basic:vic:" + viewerPass, "bearer:" + adminToken, "bearer:" + viewerToken} {
		if r := b.do(t, http.MethodGet, "/api/events", auth, nil, nil); r.code != http.StatusOK {
			t.Fatalf("%q: %d %s", auth, r.code, r.body)
		}
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct{ path, auth string }{
		{"/events", "basic:ada:" + adminPass}, {"/api/events", "bearer:" + adminToken},
		{"/static/console.css", "basic:ada:" + adminPass}, {"/events", ""}, {"/nope", "basic:ada:" + adminPass},
	} {
		r := b.do(t, http.MethodGet, c.path, c.auth, nil, nil)
		want := map[string]string{
			"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
			"Cross-Origin-Opener-Policy": "same-origin",
		}
		for k, v := range want {
			if r.h.Get(k) != v {
				t.Errorf("%s (%d): %s = %q, want %q", c.path, r.code, k, r.h.Get(k), v)
			}
		}
		csp := r.h.Get("Content-Security-Policy")
		if c.auth != "" && (!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'")) {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
	}
}

func TestActionsNeedAdminAndCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.receive(t, "evt-csrf", "csrf@example.com")
	b.kill(t, id)
	admin := "basic:ada:" + adminPass
	token := b.csrf(t, admin)
	sel := b.confirm(t, admin, token, "requeue", url.Values{"id": {id.String()}})
	// No token, a wrong token, a viewer's token, a viewer: refused, nothing changed.
	for _, c := range []struct {
		name, auth string
		v          url.Values
	}{
		{"no token", admin, sel},
		{"wrong token", admin, with(sel, "csrf", "AAAA")},
		{"viewer's own token", "basic:vic:" + viewerPass, with(sel, "csrf", b.csrf(t, "basic:vic:"+viewerPass))},
		{"viewer with the admin's token", "basic:vic:" + viewerPass, with(sel, "csrf", token)},
	} {
		if r := b.form(t, "/dead/requeue", c.auth, c.v); r.code != http.StatusForbidden {
			t.Fatalf("%s: %d, want 403: %s", c.name, r.code, r.body)
		}
		if s := b.status(t, id); s != "dead" {
			t.Fatalf("%s: the message is %s after a refused action", c.name, s)
		}
	}
	// The right token, but sent by a page of another origin.
	r := b.do(t, http.MethodPost, "/dead/requeue", admin, strings.NewReader(with(sel, "csrf", token).Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"})
	if r.code != http.StatusForbidden || b.status(t, id) != "dead" {
		t.Fatalf("cross-site POST: %d, status %s", r.code, b.status(t, id))
	}
	// Basic auth on the API is ambient too: the token is required there.
	r = b.do(t, http.MethodPost, "/api/dead/requeue", admin, strings.NewReader(`{"ids":["`+id.String()+`"]}`), nil)
	if r.code != http.StatusForbidden {
		t.Fatalf("API POST with basic auth and no token: %d", r.code)
	}
	// A bearer token is never attached by a browser: no CSRF token needed,
	// but the role still counts.
	r = b.do(t, http.MethodPost, "/api/dead/requeue", "bearer:"+viewerToken, strings.NewReader(`{"ids":["`+id.String()+`"]}`), nil)
	if r.code != http.StatusForbidden || b.status(t, id) != "dead" {
		t.Fatalf("viewer bearer: %d", r.code)
	}
	if r := b.form(t, "/dead/requeue", admin, with(sel, "csrf", token)); r.code != http.StatusOK {
		t.Fatalf("admin with token: %d %s", r.code, r.body)
	}
	if s := b.status(t, id); s != "pending" {
		t.Fatalf("after the requeue: %s", s)
	}
}

// A viewer is offered no action: no requeue, purge, pause or resume form,
// and no River UI link.
func TestViewerSeesNoActions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.kill(t, b.receive(t, "evt-view", "view@example.com"))
	for _, path := range []string{"/dead", "/destinations"} {
		viewer := b.do(t, http.MethodGet, path, "basic:vic:"+viewerPass, nil, nil)
		admin := b.do(t, http.MethodGet, path, "basic:ada:"+adminPass, nil, nil)
		if viewer.code != 200 || strings.Contains(viewer.body, `method="post"`) {
			t.Fatalf("%s as a viewer: %d, offers a form:\n%s", path, viewer.code, viewer.body)
		}
		if !strings.Contains(admin.body, `method="post"`) {
			t.Fatalf("%s as an admin offers no action", path)
		}
	}
}

// Without credentials the console answers only to a loopback Host: a page
// of another site that resolves its own name to 127.0.0.1 (DNS rebinding)
// gets 403, whatever it asks.
func TestInsecureNoAuthOnlyForLoopbackHosts(t *testing.T) {
	t.Parallel()
	c, err := console.New(pgtest.Pool(t), &console.Config{InsecureNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	for host, want := range map[string]int{
		"": http.StatusOK, "localhost:9500": http.StatusOK, "127.0.0.1": http.StatusOK, "[::1]:9500": http.StatusOK,
		"evil.example:9500": http.StatusForbidden, "127.0.0.1.nip.example": http.StatusForbidden, "10.0.0.5:9500": http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/session", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
