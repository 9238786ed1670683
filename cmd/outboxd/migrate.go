package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outboxd/outboxd/migrations"
)

const migrateUsage = `usage: outboxd migrate <action> [flags]

  up        apply every pending migration (--to N: up to version N)
  down      revert the latest migration (--to N: down to version N)
  status    list migrations and whether each is applied (read-only)
  version   print the applied version (read-only)

Run 'outboxd migrate <action> --help' for an action's flags.`

var migrateActions = map[string]string{
	"up":      "usage: outboxd migrate up [--to N] [flags]\n\nApplies every pending migration, or those up to version N with --to N\n(to stop before one that waits for every producer's upgrade: CHANGELOG.md).",
	"down":    "usage: outboxd migrate down [--to N] [flags]\n\nReverts the latest migration, or every one above version N with --to N;\n--to 0 removes everything of outboxd's, and the schema when outboxd created\nit and it is empty.",
	"status":  "usage: outboxd migrate status [flags]\n\nLists migrations and whether each is applied. Changes nothing.",
	"version": "usage: outboxd migrate version [flags]\n\nPrints the applied version (0: none). Changes nothing.",
}

// migrateFlags returns the flags of one migrate action.
func migrateFlags(action string) (*cmdFlags, *dbFlags, *int64) {
	fs, db := newDBFlags("migrate "+action, migrateActions[action])
	to := new(int64)
	*to = -1
	switch action {
	case "down":
		fs.Var((*decimalInt64)(to), "to", "revert every migration above `VERSION` (default: only the latest; 0: all)")
	case "up":
		fs.Var((*decimalInt64)(to), "to", "apply the pending migrations up to `VERSION` (default: all)")
	}
	return fs, db, to
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	group, _ := newDBFlags("migrate", migrateUsage)
	action, rest := splitAction(args, func(name string) bool {
		fs, _, _ := migrateFlags("down") // down's flags are a superset of the others'
		return isBoolFlag(fs, name)
	})
	if _, ok := migrateActions[action]; !ok {
		if action == "" && wantsHelp(args) {
			group.printHelp(stdout)
			return nil
		}
		return groupErr(group, action, args, "up, down, status or version")
	}
	fs, db, to := migrateFlags(action)
	operands, help, err := fs.parse(rest, stdout)
	if help || err != nil {
		return err
	}
	if len(operands) > 0 {
		return fs.usageErr(fmt.Sprintf("unexpected argument %q", operands[0]))
	}
	// -1 is only the flag's internal "not given": typed, it is a mistake.
	toSet := false
	fs.Visit(func(f *flag.Flag) { toSet = toSet || f.Name == "to" })
	if action == "down" && toSet && *to < 0 {
		return fs.usageErr(fmt.Sprintf("--to %d: want a version, 0 or more", *to))
	}
	if action == "up" && toSet && *to < 1 {
		return fs.usageErr(fmt.Sprintf("--to %d: want a version, 1 or more", *to))
	}
	if action == "up" && toSet {
		if latest := latestVersion(db.schema); *to > latest {
			return fs.usageErr(fmt.Sprintf("--to %d: no such migration (the latest is %d)", *to, latest))
		}
	}

	sqlDB, err := db.openSQL(ctx)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	m, err := migrations.New(sqlDB, &migrations.Config{Schema: db.schema, Logger: waitLogger(stderr)})
	if err != nil {
		return usageErrorf("%v", err)
	}
	// down must not create the schema or goose's table (a typo in
	// --schema would leave one behind): look before asking goose. (Status
	// and Version only read; they say on stderr when the schema was never
	// migrated, which a typo in --schema looks like.)
	var applied bool
	if action != "up" {
		if applied, err = hasVersionTable(ctx, sqlDB, db.schema); err != nil {
			return describeMigrateError(err)
		}
		if !applied && action != "down" {
			fmt.Fprintf(stderr, "outboxd migrate: note: schema %s has no outboxd migrations (never migrated here, or a typo in --schema?)\n", db.schema)
		}
	}

	defer warnInvalidIndexes(ctx, stderr, sqlDB, db.schema)
	switch action {
	case "up":
		up := m.Up
		if *to >= 1 {
			up = func(ctx context.Context) ([]*migrations.Result, error) { return m.UpTo(ctx, *to) }
		}
		res, err := up(ctx)
		if err != nil {
			return describeMigrateError(err)
		}
		printResults(stdout, res)
		switch {
		case len(res) > 0:
		case *to >= 1:
			fmt.Fprintf(stdout, "nothing to apply up to version %d\n", *to)
		default:
			fmt.Fprintln(stdout, "up to date")
		}
	case "down":
		return migrateDown(ctx, stdout, m, applied, *to)
	case "status":
		st, err := m.Status(ctx) // reads only
		if err != nil {
			return describeDBError(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tSOURCE")
		for _, s := range st {
			at := "-"
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			src := s.Name
			if migrations.GoMigrationName(s.Version) != "" {
				src = "(" + src + ")"
			}
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Version, state, at, src)
		}
		return tw.Flush()
	case "version":
		v, err := m.Version(ctx) // reads only
		if err != nil {
			return describeDBError(err)
		}
		fmt.Fprintln(stdout, strconv.FormatInt(v, 10))
	}
	return nil
}

func migrateDown(ctx context.Context, stdout io.Writer, m *migrations.Migrator, applied bool, to int64) error {
	current := int64(0)
	if applied {
		var err error
		if current, err = m.Version(ctx); err != nil {
			return describeMigrateError(err)
		}
	}
	if to > current {
		return fmt.Errorf("already below version %d: the applied version is %d (down never goes up; use migrate up)", to, current)
	}
	if !applied {
		fmt.Fprintf(stdout, "nothing to revert: no migration is applied in schema %s\n", m.Schema())
		return nil
	}
	var res []*migrations.Result
	var err error
	if to >= 0 {
		res, err = m.DownTo(ctx, to)
	} else {
		var r *migrations.Result
		r, err = m.Down(ctx)
		if r != nil {
			res = append(res, r)
		}
	}
	if err != nil {
		return describeMigrateError(err)
	}
	printResults(stdout, res)
	if len(res) == 0 {
		fmt.Fprintf(stdout, "nothing to revert: already at version %d\n", current)
	}
	return nil
}

// hasVersionTable reports, without writing anything, whether outboxd's
// migrations were ever applied in schema.
func hasVersionTable(ctx context.Context, db *sql.DB, schema string) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+"."+migrations.VersionTable).Scan(&ok)
	return ok, err
}

// warnInvalidIndexes prints on w a line for each invalid index of schema,
// after any migrate action: a build or drop cut short leaves one, which a
// later "up to date" would not mention.
func warnInvalidIndexes(ctx context.Context, w io.Writer, db *sql.DB, schema string) {
	// After an interrupted action too, but never holding the exit long.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, invalidIndexesSQL, schema)
	if err != nil {
		return
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var line string
		if rows.Scan(&line) == nil {
			fmt.Fprintln(w, "outboxd migrate: warning: "+line)
		}
	}
	_ = rows.Err() // a warning we could not read is no reason to fail
}

// latestVersion is the highest version this binary knows: the SQL files'
// numbers and the Go migrations'.
func latestVersion(schema string) int64 {
	var latest int64
	names, _ := fs.Glob(migrations.FS, "*.sql")
	for _, name := range names {
		if v, err := strconv.ParseInt(strings.SplitN(name, "_", 2)[0], 10, 64); err == nil {
			latest = max(latest, v)
		}
	}
	for _, m := range migrations.GoMigrations(schema) {
		latest = max(latest, m.Version)
	}
	return latest
}

func printResults(w io.Writer, res []*migrations.Result) {
	for _, r := range res {
		fmt.Fprintf(w, "%-4s %05d %s (%s)\n", r.Direction, r.Version, r.Name, r.Duration.Round(1e5))
	}
}

// migrateUp is serve --migrate's: every pending migration, with what they
// wait for in serve's log (goose's line per migration too).
func migrateUp(ctx context.Context, db *sql.DB, schema string, log *slog.Logger) error {
	m, err := migrations.New(db, &migrations.Config{Schema: schema, Logger: log})
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	return err
}

// waitLogger writes to w the lines a migration logs while it waits for
// other sessions' transactions. goose's line per migration is left out:
// migrate prints its own summary on stdout.
func waitLogger(w io.Writer) *slog.Logger {
	return slog.New(skipGoose{slog.NewTextHandler(w, nil)})
}

type skipGoose struct{ slog.Handler }

func (h skipGoose) Handle(ctx context.Context, r slog.Record) error {
	goose := false
	r.Attrs(func(a slog.Attr) bool {
		goose = a.Key == "logger" && a.Value.String() == "goose"
		return !goose
	})
	if goose {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h skipGoose) WithAttrs(as []slog.Attr) slog.Handler {
	return skipGoose{h.Handler.WithAttrs(as)}
}

func (h skipGoose) WithGroup(name string) slog.Handler {
	return skipGoose{h.Handler.WithGroup(name)}
}
