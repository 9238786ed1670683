package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
)

// showConsole serves the operator console on the demo's database and
// prints where, with credentials drawn for this run only (nothing fixed is
// committed). It first signs in through the printed URL itself, so the
// address and credentials printed are the ones that work. With keep it
// serves until ctx ends (make demo CONSOLE=1); without, the demo ends here,
// and its console with it.
func showConsole(ctx context.Context, out io.Writer, appPool *pgxpool.Pool, keep bool) error {
	pass := rand.Text() // 26 random base32 characters
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
	fmt.Fprintf(out, "\nconsole: %s  user demo, password %s (drawn for this run)\n", base, pass)
	fmt.Fprintf(out, "         or http://demo:%s@%s/\n", pass, ln.Addr())
	if !keep {
		fmt.Fprintln(out, "         the demo ends here, and its database and console with it: make demo CONSOLE=1 keeps them serving")
		return nil
	}
	fmt.Fprintln(out, "         serving until Ctrl-C; the dispatcher keeps running, so a requeue is delivered")
	<-ctx.Done()
	return nil
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
