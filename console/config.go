package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// Role is what a user may do.
type Role string

const (
	// Viewer reads every page and API endpoint, and changes nothing.
	Viewer Role = "viewer"
	// Admin may also requeue and purge dead letters and pause and resume
	// destinations.
	Admin Role = "admin"
)

// MinSecretBytes is the shortest Password or Token accepted: a trial's
// one-character token (and a five-letter password) opened the admin
// console. Anyone who reaches the console may guess at it.
const MinSecretBytes = 12

// User is one set of credentials. Exactly one of Password (HTTP basic auth
// with Name) and Token (Authorization: Bearer) is set. Take them from the
// environment or a secret store, never from a file in clear.
type User struct {
	Name     string // the user's name, in the audit log
	Role     Role   // what the user may do
	Password string // basic auth, with Name
	Token    string // a bearer token
}

// Config configures the console.
type Config struct {
	// Schema holds outboxd's objects. Default "outboxd".
	Schema string
	// Destinations are the names configured (serve passes its own): they
	// may be paused before they have a message. Any other name may be
	// paused only once known to the database (a message, a live
	// dispatcher, an earlier pause); else it is a typo, 404. Default:
	// none.
	Destinations []string
	// Users who may sign in. Required unless InsecureNoAuth.
	Users []User
	// InsecureNoAuth lets anyone who reaches the address in, as an Admin
	// named "anonymous": for a laptop, never for a shared network. Default
	// false.
	InsecureNoAuth bool
	// MaxShown caps a payload or response body shown on a page, in bytes.
	// Default 64 KiB.
	MaxShown int
	// PageSize is how many rows a list shows. Default 100.
	PageSize int
	// AuditIDs caps how many message ids one audit row keeps (its count is
	// exact). Default 10000.
	AuditIDs int
	// RiverUI, if set (riverui.Handler, started, with prefix "/riverui"),
	// is served under /riverui/ behind the same authentication, to admins
	// only: its own API can cancel and delete jobs. Default nil: no River
	// UI.
	RiverUI http.Handler
	// RequestTimeout bounds each request's work, its queries included: past
	// it the answer is 503 "database unavailable". Default
	// DefaultRequestTimeout (10 s).
	RequestTimeout time.Duration
	// Logger receives errors; never credentials. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	out.Schema = dbschema.OrDefault(out.Schema)
	if out.MaxShown <= 0 {
		out.MaxShown = 64 << 10
	}
	if out.PageSize <= 0 {
		out.PageSize = 100
	}
	if out.AuditIDs <= 0 {
		out.AuditIDs = 10000
	}
	if out.RequestTimeout <= 0 {
		out.RequestTimeout = DefaultRequestTimeout
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}

// validate names the bad field; it never quotes a password or token.
func (c *Config) validate() error {
	if err := dbschema.Validate(c.Schema); err != nil {
		return fmt.Errorf("console: Schema: %w", err)
	}
	if len(c.Users) == 0 && !c.InsecureNoAuth {
		return ErrNoAuth
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		where := fmt.Sprintf("console: Users[%d] (%q)", i, u.Name)
		switch {
		case u.Name == "":
			return fmt.Errorf("console: Users[%d]: Name is empty", i)
		case seen[u.Name]:
			return fmt.Errorf("%s: a second user of that name", where)
		case u.Role != Viewer && u.Role != Admin:
			return fmt.Errorf("%s: Role %q: want viewer or admin", where, u.Role)
		case (u.Password == "") == (u.Token == ""):
			return fmt.Errorf("%s: set exactly one of Password and Token (it is empty, or both are set)", where)
		case len(u.Password+u.Token) < MinSecretBytes:
			return fmt.Errorf("%s: the credential is %d bytes, want at least %d (MinSecretBytes)", where, len(u.Password+u.Token), MinSecretBytes)
		}
		seen[u.Name] = true
	}
	if c.InsecureNoAuth && len(c.Users) > 0 {
		return errors.New("console: InsecureNoAuth with Users: choose one")
	}
	return nil
}
