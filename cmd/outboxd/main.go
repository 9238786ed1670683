// Command outboxd is the outboxd daemon and operator CLI.
//
//	outboxd migrate up|down|status|version [--database-url URL] [--schema NAME]
//
// Run "outboxd help" for the full list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/outboxd/outboxd/internal/redact"
)

// usageError is a mistake on the command line: exit status 2. hint, when
// set, is the help command to point at.
type usageError struct{ msg, hint string }

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
		{"version", "print the version, commit and Go version", runVersion},
	}
}

func main() {
	// The first SIGINT, SIGTERM or SIGHUP starts a graceful stop; a second
	// one ends the process at once. We keep listening ourselves rather than
	// restore the default disposition: started with SIGINT ignored (a
	// shell's &), the default would be to ignore the second one too.
	// SIGHUP (a closed terminal or SSH session) ended serve at once, its
	// leases held until lease_ttl. Started ignoring it (nohup), we leave
	// it ignored: Notify would deliver it again.
	sigs := make(chan os.Signal, 2)
	stopSignals := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		stopSignals = append(stopSignals, syscall.SIGHUP)
	}
	signal.Notify(sigs, stopSignals...)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel()
		sig := <-sigs
		// What was in flight is sent again later, with the same
		// idempotency key. 128+n, as a shell reports a signal's death.
		if s, ok := sig.(syscall.Signal); ok {
			os.Exit(128 + int(s))
		}
		os.Exit(1)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stderr)
		return 2
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		usage(stdout)
		return 0
	case args[0] == "--version" || args[0] == "-version":
		args = []string{"version"}
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
		if boundsLockWaits(c.name) {
			err = describeLockWait(err)
		}
		fmt.Fprintf(stderr, "outboxd %s: %s\n", c.name, redact.Secrets(describe(err).Error()))
		var ue *usageError
		if errors.As(err, &ue) {
			if ue.hint != "" {
				fmt.Fprintf(stderr, "Run '%s' for usage.\n", ue.hint)
			}
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "outboxd: unknown command %q\nRun 'outboxd help' for the list of commands.\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: outboxd <command> [arguments]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'outboxd <command> --help' for a command's flags.")
}
