package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
)

// passwordEnv names the variable that gives the demo console's password;
// without it one is drawn for the run and written to a file only its
// owner reads. Either way it is never printed: the demo's output goes to
// terminals, CI logs and bug reports.
const passwordEnv = "OUTBOXD_DEMO_CONSOLE_PASSWORD"

// showConsole serves the operator console on the demo's database until ctx
// ends (make demo CONSOLE=1) and prints where; without keep it only says
// how to get one. It first signs in through the printed URL itself, so
// the address printed is the one that works.
func showConsole(ctx context.Context, out io.Writer, appPool *pgxpool.Pool, keep bool) error {
	if !keep {
		fmt.Fprintln(out, "\nmake demo CONSOLE=1 then serves the operator console on what the storm did")
		return nil
	}
	pass, where, cleanup, err := consolePassword()
	if err != nil {
		return err
	}
	defer cleanup()
	// A pool of the console's own, as outboxd serve gives it: its pages
	// never wait for the dispatcher's connections nor hold them.
	pcfg := appPool.Config()
	console.ConfigurePool(pcfg, console.DefaultRequestTimeout)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := console.New(pool, &console.Config{Users: []console.User{{Name: "demo", Role: console.Admin, Password: pass}}})
	if err != nil {
		return err
	}
	// A stable address when it is free, so the URL can be bookmarked.
	ln, err := net.Listen("tcp", "127.0.0.1:9500")
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	srv := newServer("", c, serverTimeouts)
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	base := "http://" + ln.Addr().String() + "/"
	if err := signIn(ctx, base, "demo", pass); err != nil {
		return fmt.Errorf("console: the printed URL does not answer: %w", err)
	}
	fmt.Fprintf(out, "\nconsole: %s  user demo, password %s\n", base, where)
	fmt.Fprintln(out, "         serving until Ctrl-C; the dispatcher keeps running, so a requeue is delivered")
	<-ctx.Done()
	return nil
}

// checkConsolePassword refuses a password in $OUTBOXD_DEMO_CONSOLE_PASSWORD
// that the console would refuse, naming the variable (the console names
// its user) and never the value.
func checkConsolePassword() error {
	if pass := os.Getenv(passwordEnv); pass != "" && len(pass) < console.MinSecretBytes {
		return fmt.Errorf("$%s is %d bytes, want at least %d (or unset it: a password is then drawn for the run)", passwordEnv, len(pass), console.MinSecretBytes)
	}
	return nil
}

// consolePassword returns the console's password, where it is to be found
// (said instead of it) and what removes it when the console ends.
func consolePassword() (pass, where string, cleanup func(), err error) {
	if pass := os.Getenv(passwordEnv); pass != "" {
		return pass, "from $" + passwordEnv, func() {}, nil
	}
	pass = rand.Text()                                             // 26 random base32 characters
	f, err := os.CreateTemp("", "outboxd-demo-console-*.password") // mode 0600
	if err != nil {
		return "", "", nil, err
	}
	_, err = io.WriteString(f, pass+"\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", "", nil, err
	}
	return pass, "in " + f.Name() + " (drawn for this run, readable by you only; or set $" + passwordEnv + ")",
		func() { _ = os.Remove(f.Name()) }, nil
}

// signIn asks the console for the session of user through base.
func signIn(ctx context.Context, base, user, pass string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"api/session", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %sapi/session: %s", base, resp.Status)
	}
	return nil
}
