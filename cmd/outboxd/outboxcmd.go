package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/outbox"
)

const outboxUsage = `usage: outboxd outbox <action> [flags]

  dead      list dead-lettered messages matching the filters
  requeue   send dead-lettered messages again (same idempotency key)
  purge     delete dead-lettered messages (needs a filter, or --all)
  show ID   one message and its delivery attempts
  paused    list destinations paused after a 410 Gone
  resume NAME  send to a paused destination again

filters: --id ID (repeatable), --destination NAME, --type T,
         --since TIME, --until TIME (RFC 3339, or a duration ago such as 2h)

flags:`

type idFlags []uuid.UUID

func (f *idFlags) String() string { return "" }

func (f *idFlags) Set(v string) error {
	id, err := uuid.Parse(v)
	if err != nil {
		return fmt.Errorf("--id %q: %w", v, err)
	}
	*f = append(*f, id)
	return nil
}

// timeFlag accepts RFC 3339 or a duration meaning "that long ago".
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string { return "" }

func (f timeFlag) Set(v string) error {
	if d, err := time.ParseDuration(v); err == nil {
		*f.t = time.Now().Add(-d)
		return nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return fmt.Errorf("%q: want RFC 3339 (2026-11-28T12:00:00Z) or a duration ago (2h)", v)
	}
	*f.t = t
	return nil
}

func runOutbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := newDBFlagSet("outbox", stderr)
	var f outbox.Filter
	ids := idFlags{}
	fs.Var(&ids, "id", "message id (repeatable)")
	fs.StringVar(&f.Destination, "destination", "", "destination name")
	fs.StringVar(&f.Type, "type", "", "message type")
	fs.Var(timeFlag{&f.Since}, "since", "created at or after")
	fs.Var(timeFlag{&f.Until}, "until", "created before")
	limit := fs.Int("limit", 100, "with dead: at most this many")
	all := fs.Bool("all", false, "with purge: allow purging without a filter")
	fs.Usage = func() { fmt.Fprintln(stderr, outboxUsage); fs.PrintDefaults() }
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErrorf("missing action")
	}
	action, rest := fs.Arg(0), fs.Args()[1:]
	// Flags may follow the action and its argument too.
	var operand string
	if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		operand, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return usageErrorf("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	f.IDs = ids
	needsOperand := action == "show" || action == "resume"
	if needsOperand != (operand != "") {
		if needsOperand {
			return usageErrorf("%s needs an argument", action)
		}
		return usageErrorf("unexpected argument %q", operand)
	}
	filtered := len(f.IDs) > 0 || f.Destination != "" || f.Type != "" || !f.Since.IsZero() || !f.Until.IsZero()

	switch action {
	case "dead", "requeue", "purge", "show", "paused", "resume":
	default:
		return usageErrorf("unknown action %q", action)
	}
	if action == "purge" && !filtered && !*all {
		return usageErrorf("purge deletes dead letters for good: give a filter, or --all")
	}
	var showID uuid.UUID
	if action == "show" {
		var err error
		if showID, err = uuid.Parse(operand); err != nil {
			return usageErrorf("show %q: not a message id", operand)
		}
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
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()

	switch action {
	case "dead":
		msgs, err := ob.ListDead(ctx, pool, f, *limit)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintln(tw, "ID\tDESTINATION\tTYPE\tCREATED\tATTEMPTS\tLAST ERROR")
		for _, m := range msgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Destination, m.Type, m.CreatedAt.UTC().Format(time.RFC3339), m.Attempts, m.LastError)
		}
	case "requeue":
		n, err := ob.Requeue(ctx, pool, f)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintf(tw, "requeued %d\n", n)
	case "purge":
		n, err := ob.PurgeDead(ctx, pool, f)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintf(tw, "purged %d\n", n)
	case "show":
		m, err := ob.Get(ctx, pool, showID)
		if err != nil {
			return describeDBError(err)
		}
		attempts, err := ob.Attempts(ctx, pool, showID)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintf(tw, "id\t%s\ndestination\t%s\ntype\t%s\nstatus\t%s\nidempotency key\t%s\nordering key\t%s\nseq\t%d\ncreated\t%s\nattempts\t%d\nnext attempt\t%s\nlast error\t%s\n",
			m.ID, m.Destination, m.Type, m.Status, m.IdempotencyKey, m.OrderingKey, m.Seq,
			m.CreatedAt.UTC().Format(time.RFC3339Nano), m.Attempts, m.NextAttemptAt.UTC().Format(time.RFC3339Nano), m.LastError)
		fmt.Fprintln(tw, "\nATTEMPT\tAT\tDURATION\tOUTCOME\tSTATUS\tERROR")
		for _, a := range attempts {
			code := "-"
			if a.StatusCode != nil {
				code = strconv.Itoa(*a.StatusCode)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Number, a.At.UTC().Format(time.RFC3339Nano), a.Duration.Round(time.Microsecond), a.Outcome, code, a.Error)
		}
	case "paused":
		ps, err := ob.PausedDestinations(ctx, pool)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintln(tw, "DESTINATION\tPAUSED AT\tREASON")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.PausedAt.UTC().Format(time.RFC3339), p.Reason)
		}
	case "resume":
		if err := ob.ResumeDestination(ctx, pool, operand); err != nil {
			return describeDBError(err)
		}
		fmt.Fprintf(tw, "resumed %s\n", operand)
	}
	return nil
}
