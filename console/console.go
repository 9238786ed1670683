package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Console serves the pages and the API. It is an http.Handler; mount it at
// the root of its own listener (its links are absolute).
type Console struct {
	cfg   Config
	store *store
	auth  *authenticator
	csrf  *csrf
	pages map[string]*template.Template
	log   *slog.Logger
	h     http.Handler
}

// New builds a console on pool, which should be its own (ConfigurePool):
// the console's queries then never wait for the dispatcher's connections.
// It fails with ErrNoAuth when cfg (a nil one included) names no user and
// does not set InsecureNoAuth.
//
// It takes a *pgxpool.Pool, not an interface: the console's pool is
// configured as its own (ConfigurePool), apart from the dispatcher's.
func New(pool *pgxpool.Pool, cfg *Config) (*Console, error) {
	if pool == nil {
		return nil, errors.New("console: New needs a pool")
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	st, err := newStore(pool, &c)
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	con := &Console{cfg: c, store: st, auth: newAuthenticator(&c), csrf: newCSRF(), pages: pages, log: c.Logger}
	con.h = con.routes()
	return con, nil
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.h.ServeHTTP(w, r) }

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))

	mux.HandleFunc("GET /{$}", c.page(c.eventsPage))
	mux.HandleFunc("GET /events", c.page(c.eventsPage))
	mux.HandleFunc("GET /events/{source}/{id...}", c.page(c.eventPage))
	mux.HandleFunc("GET /messages", c.page(c.messagesPage))
	mux.HandleFunc("GET /messages/{id}", c.page(c.messagePage))
	mux.HandleFunc("GET /dead", c.page(c.deadPage))
	mux.HandleFunc("POST /dead/confirm", c.admin(c.page(c.deadConfirmPage)))
	mux.HandleFunc("POST /dead/{action}", c.admin(c.page(c.deadActionPage)))
	mux.HandleFunc("GET /destinations", c.page(c.destinationsPage))
	mux.HandleFunc("POST /destinations/{name}/{action}", c.admin(c.page(c.pauseActionPage)))
	mux.HandleFunc("GET /failures", c.page(c.failuresPage))

	mux.HandleFunc("GET /api/session", c.api(c.apiSession))
	mux.HandleFunc("GET /api/events", c.api(c.apiEvents))
	mux.HandleFunc("GET /api/events/{source}/{id...}", c.api(c.apiEvent))
	mux.HandleFunc("GET /api/messages", c.api(c.apiMessages))
	mux.HandleFunc("GET /api/messages/{id}", c.api(c.apiMessage))
	mux.HandleFunc("GET /api/dead", c.api(c.apiDead))
	mux.HandleFunc("POST /api/dead/{action}", c.admin(c.api(c.apiDeadAction)))
	mux.HandleFunc("GET /api/destinations", c.api(c.apiDestinations))
	mux.HandleFunc("POST /api/destinations/{name}/{action}", c.admin(c.api(c.apiPauseAction)))
	mux.HandleFunc("GET /api/failures", c.api(c.apiFailures))
	mux.HandleFunc("GET /api/audit", c.api(c.apiAudit))
	// The API answers JSON to a path it does not have (404) and to a
	// method a path does not take (405), as to everything else.
	for _, p := range []string{"/api/session", "/api/events", "/api/events/{source}/{id...}", "/api/messages",
		"/api/messages/{id}", "/api/dead", "/api/dead/{action}", "/api/destinations",
		"/api/destinations/{name}/{action}", "/api/failures", "/api/audit"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			c.fail(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed here")
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "no such endpoint")
	})

	var h http.Handler = mux
	if c.cfg.RiverUI != nil {
		outer := http.NewServeMux()
		outer.Handle(riverUIPrefix, c.riverGuard(c.cfg.RiverUI))
		outer.Handle("/", mux)
		h = outer
	}
	// Headers outermost: a 401 carries them too.
	return securityHeaders(c.auth.middleware(c.cleanInput(withDeadline(c.cfg.RequestTimeout, h))))
}

// refuse answers 403, as JSON under /api/, else as a page.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, why string) {
	c.fail(w, r, http.StatusForbidden, why)
}

// fail answers an error: {"error": ...} under /api/, else a page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	c.render(w, r, code, "error", view{Title: http.StatusText(code), Error: msg})
}

// maxForm caps an action's form or JSON body (a selection of ids).
const maxForm = 1 << 20

// admin refuses a viewer, and any request that fails the CSRF checks.
func (c *Console) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if principalOf(r.Context()).Role != Admin {
			c.refuse(w, r, "this action needs the admin role")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if !c.csrf.check(r) {
			c.refuse(w, r, "missing or invalid CSRF token, or a cross-origin request; reload the page and try again")
			return
		}
		next(w, r)
	}
}
