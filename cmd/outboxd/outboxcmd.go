package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/outbox"
)

const outboxUsage = `usage: outboxd outbox <action> [flags]

  dead        list dead-lettered messages matching the filters
  requeue     send dead-lettered messages again, same idempotency key (needs a filter, or --all)
  purge       delete dead-lettered messages (needs a filter, or --all)
  show ID     one message: payload, headers and every delivery attempt
  paused      list destinations paused after a 410 Gone
  resume NAME send to a paused destination again

Run 'outboxd outbox <action> --help' for an action's flags.`

const filterHelp = `

Filters: --id ID (repeatable), --destination NAME, --type T, --since TIME,
--until TIME (RFC 3339, or a duration ago such as 2h).`

var outboxActions = map[string]struct {
	usage    string
	operand  string // the argument's name, "" for none
	filtered bool   // takes the filters
}{
	"dead":    {"usage: outboxd outbox dead [filters] [--limit N] [--json] [flags]\n\nLists dead-lettered messages, oldest first." + filterHelp, "", true},
	"requeue": {"usage: outboxd outbox requeue (filters | --all) [--dry-run] [flags]\n\nPuts dead-lettered messages back in line with a fresh attempt budget and\ntheir idempotency key, and prints how many." + filterHelp, "", true},
	"purge":   {"usage: outboxd outbox purge (filters | --all) [--dry-run] [flags]\n\nDeletes dead-lettered messages for good, and prints how many." + filterHelp, "", true},
	"show":    {"usage: outboxd outbox show ID [--json] [flags]\n\nPrints one message as stored: payload, headers and every delivery attempt.", "ID", false},
	"paused":  {"usage: outboxd outbox paused [--json] [flags]\n\nLists destinations paused after a 410 Gone.", "", false},
	"resume":  {"usage: outboxd outbox resume NAME [flags]\n\nSends to a paused destination again.", "NAME", false},
}

// outboxOpts are the values of every outbox action's flags; each action
// registers only its own.
type outboxOpts struct {
	filter      outbox.Filter
	ids         idFlags
	limit       positiveInt
	all, dryRun bool
	json        bool
}

func outboxFlags(action string) (*cmdFlags, *dbFlags, *outboxOpts) {
	a := outboxActions[action]
	fs, db := newDBFlags("outbox "+action, a.usage)
	o := &outboxOpts{limit: 100}
	if a.filtered {
		fs.Var(&o.ids, "id", "message `ID` (repeatable)")
		fs.StringVar(&o.filter.Destination, "destination", "", "destination `NAME`")
		fs.StringVar(&o.filter.Type, "type", "", "message `TYPE`")
		fs.Var(timeFlag{&o.filter.Since}, "since", "created at or after `TIME`")
		fs.Var(timeFlag{&o.filter.Until}, "until", "created before `TIME`")
	}
	switch action {
	case "dead":
		fs.Var(&o.limit, "limit", "at most `N` messages")
	case "requeue", "purge":
		fs.BoolVar(&o.all, "all", false, "every dead letter, when no filter is given")
		fs.BoolVar(&o.dryRun, "dry-run", false, "print how many messages would change, and change nothing")
	}
	if action == "dead" || action == "show" || action == "paused" {
		fs.BoolVar(&o.json, "json", false, jsonFlagHelp)
	}
	return fs, db, o
}

type idFlags []uuid.UUID

func (f *idFlags) String() string { return "" }

func (f *idFlags) Set(v string) error {
	id, err := uuid.Parse(v)
	if err != nil {
		return errors.New("not a message id")
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
		return errors.New("want RFC 3339 (2026-11-28T12:00:00Z) or a duration ago (2h)")
	}
	*f.t = t
	return nil
}

func runOutbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	group, _ := newDBFlags("outbox", outboxUsage)
	action, rest := splitAction(args, func(name string) bool {
		for a := range outboxActions {
			if fs, _, _ := outboxFlags(a); fs.Lookup(name) != nil {
				return isBoolFlag(fs, name)
			}
		}
		return true
	})
	a, ok := outboxActions[action]
	switch {
	case !ok && action == "" && wantsHelp(args):
		group.printHelp(stdout)
		return nil
	case !ok:
		return groupErr(group, action, args, "dead, requeue, purge, show, paused or resume")
	}
	fs, db, o := outboxFlags(action)
	operands, help, err := fs.parse(rest, stdout)
	if help || err != nil {
		return err
	}
	if err := fs.refuseNonText(operands); err != nil {
		return err
	}
	switch {
	case a.operand != "" && (len(operands) == 0 || strings.TrimSpace(operands[0]) == ""):
		return fs.usageErr(fmt.Sprintf("%s needs an argument: %s", action, a.operand))
	case a.operand == "" && len(operands) > 0, len(operands) > 1:
		return fs.usageErr(fmt.Sprintf("unexpected argument %q", operands[len(operands)-1]))
	}
	if err := fs.refuseEmpty("destination", "type"); err != nil {
		return err
	}
	o.filter.IDs = o.ids
	f := o.filter
	filtered := len(f.IDs) > 0 || f.Destination != "" || f.Type != "" || !f.Since.IsZero() || !f.Until.IsZero()
	switch {
	case (action == "requeue" || action == "purge") && !filtered && !o.all:
		return fs.usageErr(fmt.Sprintf("%s changes every dead letter it matches: give a filter, or --all", action))
	case o.all && filtered:
		// Which did the operator mean? Acting on fewer than "all" or on
		// more than the filter are both surprises.
		return fs.usageErr("--all means every dead letter: give it without filters, or the filters without it")
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until):
		// An empty window is a typo (the console refuses it too).
		return fs.usageErr("--since must be before --until")
	}
	var showID uuid.UUID
	if action == "show" {
		if showID, err = uuid.Parse(operands[0]); err != nil {
			return fs.usageErr(fmt.Sprintf("show %q: not a message id", operands[0]))
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
		msgs, err := ob.ListDead(ctx, pool, f, int(o.limit))
		if err != nil {
			return describeDBError(err)
		}
		if len(msgs) == 0 {
			hintUnserved(ctx, pool, db.schema, f.Destination, stderr)
		}
		if o.json {
			return writeJSON(stdout, jsonList(msgs, newMessageJSON))
		}
		fmt.Fprintln(tw, "ID\tDESTINATION\tTYPE\tCREATED\tATTEMPTS\tLAST ERROR")
		for _, m := range msgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, safeLine(m.Destination), safeLine(m.Type), m.CreatedAt.UTC().Format(time.RFC3339), m.Attempts, safeLine(m.LastError))
		}
	case "requeue", "purge":
		change := map[string]func(context.Context, outbox.DB, outbox.Filter) (int64, error){"requeue": ob.Requeue, "purge": ob.PurgeDead}[action]
		// The change runs in a transaction that a dry run rolls back, so
		// the count it prints is exactly what a real run would change.
		var n int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			if n, err = change(ctx, tx, f); err != nil || !o.dryRun {
				return err
			}
			return errDryRun
		})
		if err != nil && !errors.Is(err, errDryRun) {
			return describeDBError(err)
		}
		if n == 0 {
			hintUnserved(ctx, pool, db.schema, f.Destination, stderr)
		}
		distinct := map[uuid.UUID]bool{}
		for _, id := range f.IDs {
			distinct[id] = true
		}
		if ids := int64(len(distinct)); n < ids {
			fmt.Fprintf(stderr, "outboxd outbox: %d of the %d ids given are not dead letters the filters match (pending, delivered, purged, unknown, or left out by another filter: see outboxd outbox show ID)\n", ids-n, ids)
		}
		past := map[string]string{"requeue": "requeued", "purge": "purged"}[action]
		if o.dryRun {
			fmt.Fprintf(tw, "would have %s %d (dry run: nothing changed)\n", past, n)
		} else {
			fmt.Fprintf(tw, "%s %d\n", past, n)
		}
	case "show":
		m, err := ob.Get(ctx, pool, showID)
		if errors.Is(err, outbox.ErrNotFound) {
			return fmt.Errorf("no message %s in schema %s", showID, db.schema)
		}
		if err != nil {
			return describeDBError(err)
		}
		attempts, err := ob.Attempts(ctx, pool, showID)
		if err != nil {
			return describeDBError(err)
		}
		if o.json {
			return writeJSON(stdout, newShownMessageJSON(m, attempts))
		}
		printMessage(stdout, m, attempts)
	case "paused":
		ps, err := ob.PausedDestinations(ctx, pool)
		if err != nil {
			return describeDBError(err)
		}
		if o.json {
			return writeJSON(stdout, jsonList(ps, func(p outbox.PausedDestination) pausedJSON {
				return pausedJSON{Destination: p.Name, PausedAt: p.PausedAt.UTC(), Reason: p.Reason}
			}))
		}
		fmt.Fprintln(tw, "DESTINATION\tPAUSED AT\tREASON")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", safeLine(p.Name), p.PausedAt.UTC().Format(time.RFC3339), safeLine(p.Reason))
		}
	case "resume":
		err := ob.ResumeDestination(ctx, pool, operands[0])
		if errors.Is(err, outbox.ErrNotPaused) {
			return fmt.Errorf("destination %s is not paused", safeLine(operands[0]))
		}
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintf(tw, "resumed %s\n", operands[0])
	}
	return nil
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

// hintUnserved says on stderr when destination (a filter that matched
// nothing) names no destination a dispatcher has served: a typo's
// "requeued 0" looked like a clean result. Best-effort: a failed look says
// nothing.
func hintUnserved(ctx context.Context, pool *pgxpool.Pool, schema, destination string, stderr io.Writer) {
	if destination == "" {
		return
	}
	var (
		served bool
		names  string
	)
	if err := pool.QueryRow(ctx, dbschema.Render(servedSQL, schema), destination).Scan(&served, &names); err != nil || served {
		return
	}
	fmt.Fprintf(stderr, "note: no dispatcher has served a destination named %q (served: %s)\n", safeLine(destination), safeLine(names))
}

// servedSQL: whether $1 has lane rows (a dispatcher started with it), and
// the destinations that have.
const servedSQL = `
SELECT coalesce(bool_or(destination = $1), false),
       coalesce(string_agg(DISTINCT destination, ', ' ORDER BY destination), 'none')
FROM {{schema}}.outbox_lanes`
