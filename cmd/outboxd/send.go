package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/outboxd/outboxd/outbox"
)

const sendUsage = `usage: outboxd send --destination NAME [--type T] [--ordering-key K] [--idempotency-key K] [--header 'Name: value']... < payload

Enqueues one message whose payload is standard input, exactly as read, and
prints its id, idempotency key and sequence. With an idempotency key that the
destination already has, nothing new is stored and the existing message is
printed. Warns when no live dispatcher serves the destination.

flags:`

// headerFlags collects repeated --header 'Name: value' flags.
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := newDBFlagSet("send", stderr)
	dest := fs.String("destination", "", "destination name (required)")
	typ := fs.String("type", "", "message type")
	key := fs.String("ordering-key", "", "ordering key: messages with the same key go out one at a time, in order")
	idem := fs.String("idempotency-key", "", "idempotency key (default: the message id)")
	headers := headerFlags{}
	fs.Var(headers, "header", "header sent with the message, 'Name: value' (repeatable)")
	fs.Usage = func() { fmt.Fprintln(stderr, sendUsage); fs.PrintDefaults() }
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if *dest == "" {
		return usageErrorf("--destination is required")
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (the payload is read from standard input)", fs.Arg(0))
	}
	payload, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fmt.Errorf("read payload: %w", err)
	}
	pool, err := db.openPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ob, err := outbox.New(&outbox.Config{Schema: db.schema})
	if err != nil {
		return usageErrorf("%v", err)
	}
	e, err := ob.Enqueue(ctx, pool, outbox.Message{
		Destination: *dest, Type: *typ, OrderingKey: *key, IdempotencyKey: *idem,
		Payload: payload, Headers: http.Header(headers),
	})
	if err != nil {
		return describeDBError(err)
	}
	state := "enqueued"
	if e.Existing {
		state = "exists"
	}
	fmt.Fprintf(stdout, "%s id=%s idempotency_key=%s seq=%d\n", state, e.ID, e.IdempotencyKey, e.Seq)
	// A warning, not a failure: enqueueing before the dispatcher that will
	// send it is deployed is legitimate, and the message is stored.
	if served, err := ob.Served(ctx, pool, *dest); err == nil && !served {
		fmt.Fprintf(stderr, "warning: no live dispatcher serves destination %q; the message waits (pending, never dead-lettered) until one with it in its config runs\n", *dest)
	}
	return nil
}
