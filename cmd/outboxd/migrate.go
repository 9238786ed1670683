package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/outboxd/outboxd/migrations"
)

const migrateUsage = `usage: outboxd migrate <up|down|status|version> [flags]

  up        apply every pending migration
  down      revert the latest migration (--to N: down to version N; 0 removes
            everything of outboxd's, the schema included when it is empty)
  status    list migrations and whether each is applied
  version   print the applied version

flags:`

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := newDBFlagSet("migrate", stderr)
	to := fs.Int64("to", -1, "with down: the version to go down to")
	fs.Usage = func() {
		fmt.Fprintln(stderr, migrateUsage)
		fs.PrintDefaults()
	}
	// Flags may come before or after the action.
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErrorf("missing action")
	}
	action := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return usageErrorf("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	switch action {
	case "up", "down", "status", "version":
	default:
		return usageErrorf("unknown action %q (want up, down, status or version)", action)
	}
	if *to >= 0 && action != "down" {
		return usageErrorf("--to applies to down only")
	}

	sqlDB, err := db.openSQL(ctx)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	m, err := migrations.New(sqlDB, &migrations.Config{Schema: db.schema})
	if err != nil {
		return usageErrorf("%v", err)
	}

	switch action {
	case "up":
		res, err := m.Up(ctx)
		if err != nil {
			return describeDBError(err)
		}
		printResults(stdout, res)
		if len(res) == 0 {
			fmt.Fprintln(stdout, "up to date")
		}
	case "down":
		var res []*migrations.Result
		if *to >= 0 {
			res, err = m.DownTo(ctx, *to)
		} else {
			var r *migrations.Result
			r, err = m.Down(ctx)
			if r != nil {
				res = append(res, r)
			}
		}
		if err != nil {
			return describeDBError(err)
		}
		printResults(stdout, res)
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return describeDBError(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tSOURCE")
		for _, s := range st {
			applied := "-"
			if !s.AppliedAt.IsZero() {
				applied = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			src := s.Source.Path
			if src == "" {
				src = "(go: River schema)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, src)
		}
		return tw.Flush()
	case "version":
		v, err := m.Version(ctx)
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintln(stdout, strconv.FormatInt(v, 10))
	}
	return nil
}

func printResults(w io.Writer, res []*migrations.Result) {
	for _, r := range res {
		name := r.Source.Path
		if name == "" {
			name = "River schema (Go migration)"
		}
		fmt.Fprintf(w, "%-4s %05d %s (%s)\n", r.Direction, r.Source.Version, name, r.Duration.Round(1e5))
	}
}
