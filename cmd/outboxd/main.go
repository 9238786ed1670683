// Command outboxd is the outboxd daemon and operator CLI.
//
//	outboxd migrate up|down|status|version [--database-url URL] [--schema NAME]
//
// Run "outboxd help" for the full list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"migrate", "apply or inspect the database schema (up, down, status, version)", runMigrate},
		{"serve", "run the dispatcher: drain the outbox to its destinations", runServe},
		{"send", "enqueue one message from standard input", runSend},
		{"verify", "check a webhook signature the way the receiver does", runVerify},
		{"inbox", "received events by id or reference, and failed receipts (show, find, failures)", runInbox},
		{"outbox", "dead letters, attempts and paused destinations (dead, requeue, purge, show, paused, resume)", runOutbox},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		if err == nil {
			return 0
		}
		if errors.Is(err, errInvalid) {
			return 1 // the command printed its verdict
		}
		fmt.Fprintf(stderr, "outboxd %s: %v\n", c.name, err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "outboxd: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: outboxd <command> [arguments]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'outboxd <command> -h' for a command's flags.")
}

// parseFlags parses a command's flags; done is true when the user asked for
// -h (the usage was printed) and the command should stop without error.
func parseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usageErrorf("%v", err)
	}
	return false, nil
}
