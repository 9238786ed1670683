package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

const versionUsage = `usage: outboxd version

Prints outboxd's module version, the commit it was built from and the Go
version. outboxd_build_info on /metrics carries the same.`

// buildInfo describes this binary, from what the Go toolchain embedded.
type buildInfo struct{ version, commit, goVersion string }

func readBuildInfo() buildInfo {
	// "dev", not Go's "(devel)": the version goes into the User-Agent,
	// whose product token cannot hold parentheses.
	b := buildInfo{version: "dev", commit: "unknown", goVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.version = v
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		b.commit += "-dirty"
	}
	return b
}

// userAgent is what outboxd sends as User-Agent to HTTP destinations.
func userAgent() string { return "outboxd/" + readBuildInfo().version }

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newCmdFlags("version", versionUsage)
	operands, help, err := fs.parse(args, stdout)
	if help || err != nil {
		return err
	}
	if len(operands) > 0 {
		return fs.usageErr(fmt.Sprintf("unexpected argument %q", operands[0]))
	}
	b := readBuildInfo()
	if b.version == "dev" {
		fmt.Fprintf(stdout, "outboxd dev (development build, commit %s, %s)\n", b.commit, b.goVersion)
		return nil
	}
	fmt.Fprintf(stdout, "outboxd %s (commit %s, %s)\n", b.version, b.commit, b.goVersion)
	return nil
}
