package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/outboxd/outboxd/internal/httpheader"
	"github.com/outboxd/outboxd/outbox"
)

const sendUsage = `usage: outboxd send --destination NAME [--type T] [--ordering-key K] [--idempotency-key K] [--header 'Name: value']... < payload

Enqueues one message whose payload is standard input, exactly as read, and
prints its id, idempotency key and sequence. With an idempotency key that the
destination already has, nothing new is stored and the existing message is
printed. Warns when no live dispatcher serves the destination.

The payload must be valid JSON unless a --header 'Content-Type: ...' says
it is something else, and must not be empty unless --allow-empty is given.
The key is --idempotency-key: a --header 'Idempotency-Key: ...' is refused.`

// headerFlags collects repeated --header 'Name: value' flags.
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return errors.New("want 'Name: value'")
	}
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if bad := httpheader.Check(map[string][]string{name: {value}}); bad != "" {
		return errors.New(bad)
	}
	http.Header(h).Add(name, value)
	return nil
}

// messageHeaderFlags are send's --header flags: a message's headers, of
// which Idempotency-Key is not one (--idempotency-key is), nor one the
// HTTP destination sets itself (Host, Content-Length...: a trial's were
// stored, then replaced without a word).
type messageHeaderFlags struct{ headerFlags }

func (h messageHeaderFlags) Set(v string) error {
	if name, _, ok := strings.Cut(v, ":"); ok {
		name = strings.TrimSpace(name)
		if key := httpheader.CheckMessage(map[string][]string{name: nil}); key != "" {
			return errors.New(key)
		}
		if set := httpheader.SentByHTTP(name); set != "" && httpheader.ValidName(name) {
			return errors.New(set)
		}
	}
	return h.headerFlags.Set(v)
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := newDBFlags("send", sendUsage)
	dest := fs.String("destination", "", "destination `NAME` (required)")
	typ := fs.String("type", "", "message `TYPE`")
	key := fs.String("ordering-key", "", "ordering `KEY`: messages with the same key go out one at a time, in order")
	idem := fs.String("idempotency-key", "", "idempotency `KEY` (default: the message id)")
	allowEmpty := fs.Bool("allow-empty", false, "send an empty payload")
	headers := headerFlags{}
	fs.Var(messageHeaderFlags{headers}, "header", "header sent with the message, `'Name: value'` (repeatable)")
	operands, help, err := fs.parse(args, stdout)
	if help || err != nil {
		return err
	}
	if err := fs.refuseEmpty("ordering-key", "idempotency-key"); err != nil {
		return err
	}
	if *dest == "" {
		return fs.usageErr("--destination is required")
	}
	if len(operands) > 0 {
		return fs.usageErr(fmt.Sprintf("unexpected argument %q (the payload is read from standard input)", operands[0]))
	}
	if stdinIsTerminal() {
		fmt.Fprintln(stderr, "outboxd send: reading the payload from the terminal; end it with Ctrl-D")
	}
	// One byte past the bound is enough to refuse it, without holding the
	// rest (a trial's 300 MB send peaked at 934 MB).
	payload, err := io.ReadAll(io.LimitReader(os.Stdin, outbox.DefaultMaxPayload+1))
	if err != nil {
		return fmt.Errorf("read payload: %w", err)
	}
	if len(payload) > outbox.DefaultMaxPayload {
		return fs.usageErr(fmt.Sprintf("the payload is over %d bytes (1 MiB), the most a message may carry", outbox.DefaultMaxPayload))
	}
	if err := checkPayload(payload, http.Header(headers).Get("Content-Type"), *allowEmpty); err != nil {
		return fs.usageErr(err.Error())
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
	if errors.Is(err, outbox.ErrInvalidMessage) {
		return fs.usageErr(strings.TrimPrefix(err.Error(), "outbox: ")) // a flag's value: exit 2
	}
	if err != nil {
		return describeDBError(err)
	}
	state := "enqueued"
	if e.Existing {
		state = "exists"
	}
	// A message without an ordering key has no sequence number (NULL):
	// "seq=0" read as one.
	seq := ""
	if *key != "" {
		seq = fmt.Sprintf(" seq=%d", e.Seq)
	}
	fmt.Fprintf(stdout, "%s id=%s idempotency_key=%s%s\n", state, e.ID, e.IdempotencyKey, seq)
	// A warning, not a failure: enqueueing before the dispatcher that will
	// send it is deployed is legitimate, and the message is stored.
	if served, err := ob.Served(ctx, pool, *dest); err == nil && !served {
		fmt.Fprintf(stderr, "warning: no live dispatcher serves destination %q; the message waits (pending, never dead-lettered) until one with it in its config runs\n", *dest)
	}
	return nil
}

// checkPayload refuses what the destination would choke on: an empty
// payload, or invalid JSON sent as JSON (the default content type).
func checkPayload(payload []byte, contentType string, allowEmpty bool) error {
	if len(payload) == 0 {
		if allowEmpty {
			return nil
		}
		return errors.New("empty payload on standard input (pass --allow-empty to send one)")
	}
	mt := "application/json"
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return fmt.Errorf("--header 'Content-Type: %s': %w", contentType, err)
		}
	}
	if (mt == "application/json" || strings.HasSuffix(mt, "+json")) && !json.Valid(payload) {
		var syn *json.SyntaxError
		err := json.Unmarshal(payload, new(any))
		if errors.As(err, &syn) {
			return fmt.Errorf("the payload is not valid JSON (at byte %d: %w); for another format pass --header 'Content-Type: ...'", syn.Offset, syn)
		}
		return fmt.Errorf("the payload is not valid JSON (%w); for another format pass --header 'Content-Type: ...'", err)
	}
	// json.Valid lets invalid UTF-8 in strings through; JSON is UTF-8
	// (RFC 8259), and a receiver's parser may refuse it, or garble it.
	if (mt == "application/json" || strings.HasSuffix(mt, "+json")) && !utf8.Valid(payload) {
		return errors.New("the payload is not valid JSON (it is not UTF-8); for another format pass --header 'Content-Type: ...'")
	}
	return nil
}

// stdinIsTerminal reports whether standard input looks like a terminal: a
// character device other than /dev/null.
func stdinIsTerminal() bool {
	fi, err := os.Stdin.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
