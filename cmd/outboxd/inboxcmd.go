package main

import (
	"context"
	"errors"
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

Run 'outboxd inbox <action> --help' for an action's flags.`

var inboxActions = map[string]struct {
	usage    string
	operands int
}{
	"show":     {"usage: outboxd inbox show SOURCE EVENT_ID [--json] [flags]\n\nPrints one received event as stored: times, status, duplicates, refs,\nheaders and payload.", 2},
	"find":     {"usage: outboxd inbox find NAME=VALUE [--limit N] [--json] [flags]\n\nLists events whose references match (email=ada@example.com, contact_id=42...).", 1},
	"failures": {"usage: outboxd inbox failures [--source S] [--event ID] [--limit N] [--json] [flags]\n\nLists failed and rejected receipts, newest first, with counts.", 0},
}

type inboxOpts struct {
	limit         positiveInt
	source, event string
	json          bool
}

func inboxFlags(action string) (*cmdFlags, *dbFlags, *inboxOpts) {
	fs, db := newDBFlags("inbox "+action, inboxActions[action].usage)
	o := &inboxOpts{limit: 50}
	if action != "show" {
		fs.Var(&o.limit, "limit", "at most `N` events")
	}
	if action == "failures" {
		fs.StringVar(&o.source, "source", "", "only this `SOURCE`")
		fs.StringVar(&o.event, "event", "", "only this event `ID`")
	}
	fs.BoolVar(&o.json, "json", false, jsonFlagHelp)
	return fs, db, o
}

func runInbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	group, _ := newDBFlags("inbox", inboxUsage)
	action, rest := splitAction(args, func(name string) bool {
		for a := range inboxActions {
			if fs, _, _ := inboxFlags(a); fs.Lookup(name) != nil {
				return isBoolFlag(fs, name)
			}
		}
		return true
	})
	a, ok := inboxActions[action]
	switch {
	case !ok && action == "" && wantsHelp(args):
		group.printHelp(stdout)
		return nil
	case !ok:
		return groupErr(group, action, args, "show, find or failures")
	}
	fs, db, o := inboxFlags(action)
	operands, help, err := fs.parse(rest, stdout)
	if help || err != nil {
		return err
	}
	if err := fs.refuseNonText(operands); err != nil {
		return err
	}
	if len(operands) != a.operands {
		return fs.usageErr(fmt.Sprintf("%s takes %d argument(s), got %d", action, a.operands, len(operands)))
	}
	var refName, refValue string
	if action == "find" {
		var ok bool
		if refName, refValue, ok = strings.Cut(operands[0], "="); !ok || refName == "" || strings.TrimSpace(refValue) == "" {
			return fs.usageErr(fmt.Sprintf("find %q: want NAME=VALUE, with a value", operands[0]))
		}
	}
	if err := fs.refuseEmpty("source", "event"); err != nil {
		return err
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
		if errors.Is(err, inbox.ErrNotFound) {
			return fmt.Errorf("no event %s from source %s in schema %s", safeLine(operands[1]), safeLine(operands[0]), db.schema)
		}
		if err != nil {
			return describeDBError(err)
		}
		if o.json {
			return writeJSON(stdout, newEventJSON(ev))
		}
		printEvent(stdout, ev)
	case "find":
		evs, err := in.FindByRef(ctx, pool, refName, refValue, int(o.limit))
		if err != nil {
			return describeDBError(err)
		}
		if o.json {
			return writeJSON(stdout, jsonList(evs, newEventJSON))
		}
		fmt.Fprintln(tw, "SOURCE\tEVENT ID\tTYPE\tSTATUS\tRECEIVED\tDUPLICATES\tREFS")
		for _, ev := range evs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", safeLine(ev.Source), safeLine(ev.ID), safeLine(ev.Type), ev.Status, ev.ReceivedAt.UTC().Format(time.RFC3339), ev.DuplicateCount, safeLine(formatRefs(ev.Refs)))
		}
	case "failures":
		fails, err := in.Failures(ctx, pool, o.source, o.event, int(o.limit))
		if err != nil {
			return describeDBError(err)
		}
		if o.json {
			return writeJSON(stdout, jsonList(fails, newFailureJSON))
		}
		fmt.Fprintln(tw, "SOURCE\tEVENT ID\tKIND\tSTATUS\tCOUNT\tFIRST\tLAST\tREASON")
		for _, f := range fails {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", safeLine(f.Source), safeLine(f.EventID), safeLine(string(f.Kind)), f.StatusCode, f.Count,
				f.FirstAt.UTC().Format(time.RFC3339), f.LastAt.UTC().Format(time.RFC3339), safeLine(f.Reason))
		}
	}
	return nil
}
