package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// cmdFlags is one command's flags with outboxd's conventions: --help prints
// the command's own usage to stdout (exit 0); a mistake is one line of
// error and a hint to --help (exit 2), never the whole usage.
type cmdFlags struct {
	*flag.FlagSet
	cmd   string // as typed: "outbox resume"
	usage string // text before the flag list
}

func newCmdFlags(cmd, usage string) *cmdFlags {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	// We print help and errors ourselves, once.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, cmd: cmd, usage: usage}
}

// parse parses args, flags and operands in any order, and returns the
// operands. help is true when the user asked for --help:
// the usage was printed to stdout and the command should stop.
func (f *cmdFlags) parse(args []string, stdout io.Writer) (operands []string, help bool, err error) {
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printHelp(stdout)
				return nil, true, nil
			}
			return nil, false, f.usageErr(f.describe(err))
		}
		args = f.Args()
		if len(args) == 0 {
			return operands, false, nil
		}
		operands, args = append(operands, args[0]), args[1:]
	}
}

// refuseEmpty refuses any of names given as an empty (or blank) value:
// given from an unset shell variable ("--destination $D"), it would
// silently mean "none" (every destination, no ordering, a random key),
// and a purge or a send would act on something else than meant.
func (f *cmdFlags) refuseEmpty(names ...string) error {
	var err error
	f.Visit(func(fl *flag.Flag) {
		if err == nil && slices.Contains(names, fl.Name) && strings.TrimSpace(fl.Value.String()) == "" {
			err = f.usageErr(fmt.Sprintf("--%s is empty: leave it out, or give it a value", fl.Name))
		}
	})
	return err
}

// refuseNonText refuses a flag value or an argument that is not UTF-8
// text without NUL, which PostgreSQL refuses: its raw "invalid byte
// sequence" came back as a failure (exit 1), the byte echoed (an
// operator's trial). The value is not shown.
func (f *cmdFlags) refuseNonText(operands []string) error {
	var err error
	f.Visit(func(fl *flag.Flag) {
		if err == nil && !isText(fl.Value.String()) {
			err = f.usageErr(fmt.Sprintf("--%s is not UTF-8 text", fl.Name))
		}
	})
	for i, op := range operands {
		if err == nil && !isText(op) {
			err = f.usageErr(fmt.Sprintf("argument %d is not UTF-8 text", i+1))
		}
	}
	return err
}

func isText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// usageErr is a usage error that points at this command's --help.
func (f *cmdFlags) usageErr(msg string) error {
	return &usageError{msg: msg, hint: "outboxd " + f.cmd + " --help"}
}

var flagErr = []struct {
	re  *regexp.Regexp
	fmt string
}{
	{regexp.MustCompile(`^flag provided but not defined: -+(.*)$`), "unknown flag --%s"},
	{regexp.MustCompile(`^flag needs an argument: -+(.*)$`), "flag --%s needs a value"},
	{regexp.MustCompile(`^bad flag syntax: (.*)$`), "bad flag syntax: %s"},
}

var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-+([^:]+): (.*)$`)

// describe rewrites the flag package's errors in our terms: flags with
// "--", and what a valid value looks like instead of "parse error".
func (f *cmdFlags) describe(err error) string {
	msg := err.Error()
	for _, e := range flagErr {
		if m := e.re.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf(e.fmt, m[1])
		}
	}
	m := invalidValue.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	value, name, why := m[1], m[2], m[3]
	// The flag package's own reasons say nothing useful; say what is wanted.
	if fl := f.Lookup(name); fl != nil && (why == "parse error" || why == "value out of range") {
		if g, ok := fl.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				why = "want a duration such as 30s, 5m or 2h"
			case int, int64, uint, uint64:
				why = "want a whole number"
			case bool:
				why = "want true or false"
			}
		}
	}
	if name == "header" {
		value = headerShown(value)
	}
	return fmt.Sprintf("--%s %s: %s", name, value, why)
}

// headerShown is a refused --header value as errors show it: its name
// only, since the value may be a credential in any form (quoted is the
// flag package's quoting).
func headerShown(quoted string) string {
	v, err := strconv.Unquote(quoted)
	if err != nil {
		return "(value not shown)"
	}
	if name, _, ok := strings.Cut(v, ":"); ok {
		return strconv.Quote(strings.TrimSpace(name) + ": ...")
	}
	return "(value not shown: no 'Name:' in it)"
}

// printHelp prints the usage text and the flags, spelled with "--" as the
// docs spell them.
func (f *cmdFlags) printHelp(w io.Writer) {
	fmt.Fprintln(w, f.usage)
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	f.VisitAll(func(fl *flag.Flag) {
		arg, usage := flag.UnquoteUsage(fl)
		if g, ok := fl.Value.(flag.Getter); ok && arg == "value" {
			if _, ok := g.Get().(time.Duration); ok {
				arg = "duration" // as for flag.Duration
			}
		}
		arg = strings.ToUpper(arg)
		name := "--" + fl.Name
		if arg != "" {
			name += " " + arg
		}
		if d := fl.DefValue; d != "" && d != "0" && d != "false" && d != "0s" && !strings.Contains(usage, "(default") {
			usage += fmt.Sprintf(" (default %s)", d)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, usage)
	})
	tw.Flush()
}

// positiveInt is an int flag that refuses zero and negative values at
// parse time, so they exit 2 instead of reaching the database.
type positiveInt int

func (p *positiveInt) String() string { return fmt.Sprint(int(*p)) }
func (p *positiveInt) Get() any       { return int(*p) }

func (p *positiveInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	if n <= 0 {
		return errors.New("must be at least 1")
	}
	*p = positiveInt(n)
	return nil
}

// decimalInt64 is an int64 flag read in base 10 only: the flag package's
// own reads 0x10 as 16 and refuses 08.
type decimalInt64 int64

func (d *decimalInt64) String() string { return strconv.FormatInt(int64(*d), 10) }
func (d *decimalInt64) Get() any       { return int64(*d) }

func (d *decimalInt64) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("want a whole number")
	}
	// A sign only on a negative number, which the caller refuses with its
	// own words: an operator's `--to -0` was read as 0 and reverted all.
	if s[0] == '+' || (s[0] == '-' && n == 0) {
		return errors.New("want a whole number without a sign")
	}
	*d = decimalInt64(n)
	return nil
}

// splitAction finds a command's action: the first argument that is neither
// a flag nor a flag's value, so flags may come before or after it. isBool
// tells whether a flag takes no value; unknown flags are assumed to take
// none and are reported by the action's own parse.
func splitAction(args []string, isBool func(name string) bool) (action string, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return args[i+1], append(append([]string{}, args[:i]...), args[i+2:]...)
			}
			return "", args
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return a, append(append([]string{}, args[:i]...), args[i+1:]...)
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") || isBool(name) {
			continue
		}
		i++ // skip the flag's value
	}
	return "", args
}

// groupErr is the usage error of a command with actions (migrate, outbox,
// inbox) when the action is missing or unknown: a bad flag before it is
// reported as such.
func groupErr(group *cmdFlags, action string, args []string, actions string) error {
	if action == "" {
		if err := group.Parse(args); err != nil && !errors.Is(err, flag.ErrHelp) {
			return group.usageErr(group.describe(err))
		}
		return group.usageErr("missing action (want " + actions + ")")
	}
	return group.usageErr(fmt.Sprintf("unknown action %q (want %s)", action, actions))
}

// wantsHelp reports whether args ask for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "--h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

// isBoolFlag reports whether fs has a flag called name that takes no value.
func isBoolFlag(fs *cmdFlags, name string) bool {
	fl := fs.Lookup(name)
	if fl == nil {
		return true
	}
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// boundedDuration is a duration flag that refuses values below its
// minimum at parse time: a zero or negative --connect-timeout would
// otherwise be reported as "timed out", a negative --tolerance ignored.
type boundedDuration struct {
	d        *time.Duration
	positive bool // more than 0; otherwise 0 or more
}

func (b boundedDuration) String() string {
	if b.d == nil {
		return "0s"
	}
	return b.d.String()
}
func (b boundedDuration) Get() any { return *b.d }

func (b boundedDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 30s, 5m or 2h")
	}
	switch {
	case b.positive && d <= 0:
		return errors.New("must be more than 0")
	case d < 0:
		return errors.New("must not be negative")
	}
	*b.d = d
	return nil
}
