// Command apicheck dumps the exported API of each public package to
// api/<path>.txt (`make api`: go run ./internal/apicheck -write); without
// -write, and in its test, it fails with a diff when a dump is stale, so an
// API change is deliberate, reviewed and noted in CHANGELOG.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/tools/go/packages"
)

const module = "github.com/outboxd/outboxd/"

// public lists the packages whose API is committed under api/.
var public = []string{
	"outbox", "inbox", "inbox/verify", "inbox/inboxtest",
	"worker", "dispatch", "migrations", "console",
}

const hint = "API changed: run `make api` and commit api/ (CHANGELOG.md entry needed)"

func main() {
	write := flag.Bool("write", false, "regenerate api/ instead of checking it")
	flag.Parse()
	report, err := run(".", ".", *write)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apicheck:", err)
		os.Exit(2)
	}
	if report != "" {
		fmt.Fprint(os.Stderr, report)
		os.Exit(1)
	}
}

// run dumps the public packages of the module at root and either writes
// the dumps under out/api/ or returns a report of those that differ from
// them ("" if none).
func run(root, out string, write bool) (string, error) {
	patterns := make([]string, len(public))
	for i, p := range public {
		patterns[i] = module + p
	}
	dumps, err := load(root, patterns...)
	if err != nil {
		return "", err
	}
	var report strings.Builder
	for _, p := range public {
		file, got := filepath.Join(out, apiFile(p)), dumps[module+p]
		if write {
			err := os.MkdirAll(filepath.Dir(file), 0o755)
			if err == nil {
				err = os.WriteFile(file, []byte(got), 0o644)
			}
			if err != nil {
				return "", err
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) { // a missing dump diffs as empty
			return "", err
		}
		if d := diff(string(want), got); d != "" {
			fmt.Fprintf(&report, "%s: %s\n--- %s (committed)\n+++ %s (current)\n%s\n", p, hint, apiFile(p), p, d)
		}
	}
	return report.String(), nil
}

// apiFile is a package's dump, relative to the module root.
func apiFile(pkg string) string {
	return filepath.Join("api", strings.ReplaceAll(pkg, "/", "_")+".txt")
}

// load type-checks the packages (import paths, from the module at dir) and
// returns each one's dump by import path.
func load(dir string, paths ...string) (map[string]string, error) {
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedTypes, Dir: dir}
	pkgs, err := packages.Load(cfg, paths...)
	if err != nil {
		return nil, err
	}
	dumps := make(map[string]string, len(pkgs))
	for _, p := range pkgs {
		if len(p.Errors) > 0 { // a package that does not compile has no API to dump
			return nil, fmt.Errorf("%s: %w", p.PkgPath, p.Errors[0])
		}
		dumps[p.PkgPath] = dump(p.Types)
	}
	return dumps, nil
}
