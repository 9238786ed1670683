package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// origin says where a setting's value came from, so that an error names
// that place, and shows the value only when it is not from the
// environment: a variable may hold a secret, and the docs promise never
// to echo one.
type origin struct {
	name string // "--log-level", "OUTBOXD_LOG_LEVEL", "config F: line 3: log_level"
	flag bool   // typed on the command line: a usage error with a hint
	hint string // for a flag: the help command to point at
	echo bool   // the value may be shown
	expr string // for a file's ${VAR} value: the expression, shown instead
}

func flagOrigin(cmd, name string) origin {
	return origin{name: "--" + name, flag: true, echo: true, hint: "outboxd " + cmd + " --help"}
}

// pick returns the first set of the flag, the OUTBOXD_ variable and the
// file's value at key, and where it came from; def when none is.
func pick(cmd, flagVal, flagName, envName string, file *fileConfig, key, fileVal, def string) (string, origin) {
	switch {
	case flagVal != "":
		return flagVal, flagOrigin(cmd, flagName)
	case envName != "" && os.Getenv(envName) != "":
		return os.Getenv(envName), origin{name: envName}
	case fileVal != "":
		return fileVal, file.origin(key)
	}
	return def, origin{name: "--" + flagName, echo: true}
}

// errorf reports that value is wrong: what is the complaint ("not a log
// level"), want what would do ("want json or text").
func (o origin) errorf(value, what, want string) error {
	var msg string
	switch {
	case o.flag:
		msg = fmt.Sprintf("%s %q: %s (%s)", o.name, value, what, want)
	case o.expr != "":
		msg = fmt.Sprintf("%s: the value of %q is %s (%s)", o.name, o.expr, what, want)
	case o.echo:
		msg = fmt.Sprintf("%s: %q is %s (%s)", o.name, value, what, want)
	default:
		msg = fmt.Sprintf("%s: %s (%s)", o.name, what, want)
	}
	return &usageError{msg: msg, hint: o.hint}
}

// wrap puts err, whose text may quote value, under o's name, without the
// value when it must not be shown.
func (o origin) wrap(value string, err error) error {
	msg := err.Error()
	if !o.echo {
		msg = strings.Replace(msg, " "+strconv.Quote(value), "", 1)
	}
	if !o.flag {
		msg = o.name + ": " + msg
	}
	return &usageError{msg: msg, hint: o.hint}
}
