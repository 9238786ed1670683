package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
)

// consoleConf is the console: section (docs/operations.md, "Console"). The
// credentials are never in the file: it names the environment variables
// that hold them.
type consoleConf struct {
	Listen         string                     `yaml:"listen"`
	InsecureNoAuth bool                       `yaml:"insecure_no_auth"`
	Users          map[string]consoleUserConf `yaml:"users"`
	RiverUI        bool                       `yaml:"river_ui"`
}

type consoleUserConf struct {
	Role        string `yaml:"role"`
	PasswordEnv string `yaml:"password_env"`
	TokenEnv    string `yaml:"token_env"`
}

// validateConsole checks the console: section as written; the variables it
// names are read when serve starts (consoleUsers).
func (c *fileConfig) validateConsole() error {
	cc := c.Console
	if cc == nil {
		return nil
	}
	if cc.Listen == "" {
		return c.errAt("console.listen", "required: the console's own address, for example 127.0.0.1:9500")
	}
	if checkListen(cc.Listen) != nil {
		return c.errAt("console.listen", "%s is not host:port (for example 127.0.0.1:9500)", c.show("console.listen", cc.Listen))
	}
	if len(cc.Users) == 0 && !cc.InsecureNoAuth {
		return c.errAt("console", "no credentials: name users (each with password_env or token_env), or set insecure_no_auth: true for local use; the console never opens by accident")
	}
	if len(cc.Users) > 0 && cc.InsecureNoAuth {
		return c.errAt("console.insecure_no_auth", "set, and users named too: choose one")
	}
	if cc.InsecureNoAuth && !loopbackListen(cc.Listen) {
		return c.errAt("console.listen", "insecure_no_auth serves only a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): anyone who reaches it is an admin")
	}
	vars := map[string]string{} // variable -> the user who names it
	for _, name := range slices.Sorted(maps.Keys(cc.Users)) {
		u, at := cc.Users[name], "console.users."+name
		if strings.Contains(name, ":") {
			// Basic auth splits "name:password" at the first colon.
			return c.errAt(at, "a user name cannot contain ':'")
		}
		if u.Role != string(console.Viewer) && u.Role != string(console.Admin) {
			return c.errAt(at+".role", "%q: want viewer or admin", u.Role)
		}
		if (u.PasswordEnv == "") == (u.TokenEnv == "") {
			return c.errAt(at, "set exactly one of password_env (basic auth) and token_env (bearer token)")
		}
		env := u.PasswordEnv + u.TokenEnv
		if other, ok := vars[env]; ok {
			return c.errAt(at, "%s is also %s's credential: each user needs a secret of their own", env, other)
		}
		vars[env] = name
	}
	return nil
}

// loopbackListen reports whether addr listens on loopback only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameListen reports whether two listen addresses would clash: the same
// port, and the same host or either on every interface.
func sameListen(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp || ap == "0" {
		return false
	}
	every := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ah == bh || every(ah) || every(bh)
}

// checkConsoleListen refuses a console on the address of /metrics.
func checkConsoleListen(cc *consoleConf, opsListen string) error {
	if cc != nil && sameListen(cc.Listen, opsListen) {
		return fmt.Errorf("console.listen (%s) is the address of /metrics and /healthz (%s): give the console its own", cc.Listen, opsListen)
	}
	return nil
}

// consoleUsers reads each user's credential from the variable the file
// names; the error names the variable, never a value.
func (cc *consoleConf) consoleUsers() ([]console.User, error) {
	var users []console.User
	for _, name := range slices.Sorted(maps.Keys(cc.Users)) {
		u := cc.Users[name]
		cu := console.User{Name: name, Role: console.Role(u.Role)}
		env, dst := u.PasswordEnv, &cu.Password
		if u.TokenEnv != "" {
			env, dst = u.TokenEnv, &cu.Token
		}
		if *dst = os.Getenv(env); *dst == "" {
			return nil, fmt.Errorf("console.users.%s: %s is not set or empty (it holds the user's credential)", name, env)
		}
		if n := len(*dst); n < console.MinSecretBytes {
			return nil, fmt.Errorf("console.users.%s: %s holds %d bytes, want at least %d: anyone who reaches the console may guess at it", name, env, n, console.MinSecretBytes)
		}
		users = append(users, cu)
	}
	return users, nil
}

// consoleServer serves console.listen from serve's start: 503 until the
// console exists (a connection to a bound address that nothing served
// would hang), then the console.
type consoleServer struct {
	handoff
	ln  net.Listener
	srv *http.Server
}

// listenConsole takes the console's address, before serve connects or
// migrates: an address in use is found before anything changed.
func listenConsole(cc *consoleConf, logger *slog.Logger) (*consoleServer, error) {
	ln, err := net.Listen("tcp", cc.Listen)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return nil, fmt.Errorf("console: listen on console.listen (%s): %w", cc.Listen, err)
	}
	cs := &consoleServer{ln: ln}
	cs.serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "starting: the console answers once serve has connected to the database (and migrated, with --migrate)", http.StatusServiceUnavailable)
	}))
	cs.srv = &http.Server{Handler: cs, ReadHeaderTimeout: consoleReadHeaderTimeout, ReadTimeout: opsReadTimeout,
		WriteTimeout: consoleWriteTimeout, IdleTimeout: consoleIdleTimeout, MaxHeaderBytes: consoleMaxHeaderBytes}
	go func() {
		if err := cs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("console server failed", "error", err)
		}
	}()
	return cs, nil
}

// close stops the console's port at once (after its stop, nothing left).
// The listener is closed too: a server whose Serve has not begun yet does
// not know it, and the port would stay bound after serve returned.
func (cs *consoleServer) close() { _ = cs.srv.Close(); _ = cs.ln.Close() }

// startConsole hands cs to the console, with a pool of its own
// (console.ConfigurePool: console.PoolSize connections, statement_timeout
// at the request deadline), so that its pages never wait for the
// dispatcher's connections nor hold them. stop shuts it all down: the
// server within ctx, River UI's background work, the pool. On error cs
// answers 503 still, and the caller closes it.
func startConsole(ctx context.Context, cs *consoleServer, cc *consoleConf, users []console.User, base *pgxpool.Pool, schema string,
	destinations []string, logger *slog.Logger) (stop func(context.Context), err error) {
	pcfg := base.Config()
	console.ConfigurePool(pcfg, console.DefaultRequestTimeout)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	stopRiver := func() {}
	cleanup := func() { stopRiver(); pool.Close() }
	cfg := &console.Config{Schema: schema, Users: users, InsecureNoAuth: cc.InsecureNoAuth, Destinations: destinations, Logger: logger}
	if cc.RiverUI {
		h, stopUI, err := riverUI(ctx, pool, schema, logger)
		if err != nil {
			cleanup()
			return nil, err
		}
		cfg.RiverUI, stopRiver = h, stopUI
	}
	c, err := console.New(pool, cfg)
	if err != nil {
		cleanup()
		return nil, err
	}
	cs.serve(c)
	if cc.InsecureNoAuth {
		logger.Warn("console: insecure_no_auth is set: anyone who reaches the address is an admin", "listen", cs.ln.Addr().String())
	}
	logger.Info("console serving", "listen", cs.ln.Addr().String(), "users", len(users))
	return func(ctx context.Context) {
		if cs.srv.Shutdown(ctx) != nil {
			cs.close()
		}
		cleanup()
	}, nil
}

// The console listener's limits (docs/operations.md, "Console"): headers
// within 5 s and 64 KiB, the whole request within opsReadTimeout, an answer
// written within 30 s (a request's work is bounded by
// console.DefaultRequestTimeout, 10 s), idle connections closed after 60 s.
// Action bodies are capped by the console (1 MiB).
const (
	consoleReadHeaderTimeout = 5 * time.Second
	consoleWriteTimeout      = 30 * time.Second
	consoleIdleTimeout       = 60 * time.Second
	consoleMaxHeaderBytes    = 64 << 10
)
