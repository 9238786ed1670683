// Command crm-deals is a small CRM deals service built on outboxd, and its
// demo.
//
//	crm-deals demo [--console]     run the whole thing on a throwaway database and check it (make demo);
//	                               --console keeps serving the operator console afterwards (make demo CONSOLE=1)
//	crm-deals serve [--listen A]   the CRM service alone ($DATABASE_URL, outboxd migrations applied)
//	crm-deals downstream [--listen A]  the fake email and chat APIs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/examples/crm-deals/crm"
	"github.com/outboxd/outboxd/examples/crm-deals/downstream"
	"github.com/outboxd/outboxd/examples/crm-deals/storm"
	"github.com/outboxd/outboxd/internal/pgtest"
)

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) { // under nohup it stays ignored
		// A closed terminal ends the demo as Ctrl-C does: its console's
		// password file is removed.
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	cmd := "demo"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var err error
	switch cmd {
	case "demo":
		err = demo(ctx, os.Args[2:])
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "downstream":
		err = runDownstream(ctx, os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: crm-deals [demo | serve [--listen ADDR] | downstream [--listen ADDR]]")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crm-deals:", err)
		os.Exit(1)
	}
}

// demo gets a PostgreSQL by the test harness's rules, makes a fresh
// database, runs the storm, and shows the operator console on it.
func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	keep := fs.Bool("console", false, "keep serving the operator console until Ctrl-C")
	_ = fs.Parse(args)
	if *keep {
		if err := checkConsolePassword(); err != nil {
			return err // before the storm, not after it
		}
	}
	fmt.Println("crm-deals demo: a CRM deals service on outboxd, under a storm of real signed webhooks")
	srv, err := pgtest.Acquire(ctx)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("PostgreSQL:", srv.Origin)
	url, err := pgtest.Recreate(ctx, srv.AdminURL, "crm_deals_demo")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	env, err := storm.Start(ctx, pool, os.Stdout)
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Println("started: CRM service, outboxd dispatcher (embedded), fake email and chat APIs")
	start := time.Now()
	summary, runErr := env.Run(ctx)
	fmt.Printf("\n=== summary (%s) ===\n\n", time.Since(start).Round(100*time.Millisecond))
	if summary != nil {
		summary.Print(os.Stdout)
	}
	if runErr != nil {
		fmt.Println("\nFAILED:", runErr)
		return errors.New("an invariant is broken")
	}
	fmt.Println("\nOK: every invariant holds (one contact per email, one deal and one task per lead,\nno stage rolled back, every notification applied exactly once after the outage)")
	return showConsole(ctx, os.Stdout, pool, *keep)
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address of the webhooks and the API")
	_ = fs.Parse(args)
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("set DATABASE_URL (with outboxd's migrations applied: outboxd migrate up)")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := crm.Migrate(ctx, pool); err != nil {
		return err
	}
	secrets := storm.Secrets
	for env, dst := range map[string]*string{"FORMS_SECRET": &secrets.Forms, "PAYMENTS_SECRET": &secrets.Payments, "CALENDAR_SECRET": &secrets.Calendar} {
		if v := os.Getenv(env); v != "" {
			*dst = v
		}
	}
	// The read API shows contacts' emails: off unless a token is set.
	secrets.API = os.Getenv("CRM_API_TOKEN")
	if secrets.API == "" {
		slog.Warn("CRM_API_TOKEN is not set: GET /deals answers 401")
	}
	svc, err := crm.New(pool, secrets, nil, slog.Default())
	if err != nil {
		return err
	}
	return listenAndServe(ctx, *listen, svc)
}

func runDownstream(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("downstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address of the fake email and chat APIs")
	_ = fs.Parse(args)
	return listenAndServe(ctx, *listen, downstream.New())
}

// Timeouts of the servers: a client that dribbles its headers or body, or
// reads the answer slowly, or idles, loses its connection instead of
// holding it. Webhook bodies are small (1 MiB at most) and senders send
// them at once, so 15 s to read one is generous.
var serverTimeouts = timeouts{header: 5 * time.Second, read: 15 * time.Second, write: 20 * time.Second, idle: 60 * time.Second}

type timeouts struct{ header, read, write, idle time.Duration }

func newServer(addr string, h http.Handler, t timeouts) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: t.header, ReadTimeout: t.read,
		WriteTimeout: t.write, IdleTimeout: t.idle, MaxHeaderBytes: 64 << 10}
}

func listenAndServe(ctx context.Context, addr string, h http.Handler) error {
	srv := newServer(addr, h, serverTimeouts)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	slog.Info("listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
