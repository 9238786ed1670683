package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
)

// showConsole serves the operator console on the demo's database until ctx
// ends, and prints where, with credentials drawn for this run only (nothing
// fixed is committed). Without keep it only says how to get it: the demo
// ends, and its database with it.
func showConsole(ctx context.Context, pool *pgxpool.Pool, keep bool) error {
	if !keep {
		fmt.Println("\nconsole: run `make demo CONSOLE=1` to browse what the storm did in the operator console\n         (it prints the URL, http://127.0.0.1:9500/, with credentials drawn for that run)")
		return nil
	}
	pass := rand.Text() // 26 random base32 characters
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
	fmt.Printf("\nconsole: http://%s/  user demo, password %s (drawn for this run)\n", ln.Addr(), pass)
	fmt.Printf("         or http://demo:%s@%s/\n", pass, ln.Addr())
	fmt.Println("         serving until Ctrl-C; the dispatcher keeps running, so a requeue is delivered")
	<-ctx.Done()
	return nil
}
