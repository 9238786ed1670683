package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outboxd/outboxd/inbox"
)

const inboxUsage = `usage: outboxd inbox <action> [flags]

  show SOURCE EVENT_ID   one received event: times, status, duplicates, refs, headers, payload
  find NAME=VALUE        events whose references match (email=ada@example.com, contact_id=42...)
  failures               failed and rejected receipts, newest first (--source, --event)

flags:`

func runInbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := newDBFlagSet("inbox", stderr)
	limit := fs.Int("limit", 50, "with find and failures: at most this many")
	source := fs.String("source", "", "with failures: only this source")
	event := fs.String("event", "", "with failures: only this event id")
	fs.Usage = func() { fmt.Fprintln(stderr, inboxUsage); fs.PrintDefaults() }
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErrorf("missing action")
	}
	action, operands := fs.Arg(0), []string{}
	rest := fs.Args()[1:]
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		operands, rest = append(operands, rest[0]), rest[1:]
	}
	if done, err := parseFlags(fs, rest); done || err != nil {
		return err
	}
	want := map[string]int{"show": 2, "find": 1, "failures": 0}
	n, known := want[action]
	switch {
	case !known:
		return usageErrorf("unknown action %q (want show, find or failures)", action)
	case len(operands) != n || fs.NArg() > 0:
		return usageErrorf("%s takes %d argument(s), got %q", action, n, append(operands, fs.Args()...))
	}
	var refName, refValue string
	if action == "find" {
		var ok bool
		if refName, refValue, ok = strings.Cut(operands[0], "="); !ok || refName == "" {
			return usageErrorf("find %q: want NAME=VALUE", operands[0])
		}
	}
	pool, err := db.openPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	in, err := inbox.New(&inbox.Config{Schema: db.schema})
	if err != nil {
		return usageErrorf("%v", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch action {
	case "show":
		ev, err := in.Get(ctx, pool, operands[0], operands[1])
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintf(tw, "source\t%s\nevent id\t%s\nbest-effort id\t%v\ntype\t%s\nstatus\t%s %s\nreceived\t%s\nlast seen\t%s\nduplicates\t%d\nexpires\t%s\nrefs\t%v\n",
			ev.Source, ev.ID, ev.BestEffort, ev.Type, ev.Status, ev.Reason, ev.ReceivedAt.UTC().Format(time.RFC3339Nano),
			ev.LastSeenAt.UTC().Format(time.RFC3339Nano), ev.DuplicateCount, ev.ExpiresAt.UTC().Format(time.RFC3339), ev.Refs)
		for k, v := range ev.Headers {
			fmt.Fprintf(tw, "header\t%s: %s\n", k, strings.Join(v, ", "))
		}
		fmt.Fprintf(tw, "payload\t%s\n", ev.Payload)
	case "find":
		evs, err := in.FindByRef(ctx, pool, refName, refValue, *limit)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintln(tw, "SOURCE\tEVENT ID\tTYPE\tSTATUS\tRECEIVED\tDUPLICATES\tREFS")
		for _, ev := range evs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%v\n", ev.Source, ev.ID, ev.Type, ev.Status, ev.ReceivedAt.UTC().Format(time.RFC3339), ev.DuplicateCount, ev.Refs)
		}
	case "failures":
		fails, err := in.Failures(ctx, pool, *source, *event, *limit)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintln(tw, "SOURCE\tEVENT ID\tKIND\tSTATUS\tCOUNT\tFIRST\tLAST\tREASON")
		for _, f := range fails {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", f.Source, f.EventID, f.Kind, f.StatusCode, f.Count,
				f.FirstAt.UTC().Format(time.RFC3339), f.LastAt.UTC().Format(time.RFC3339), f.Reason)
		}
	}
	return nil
}
