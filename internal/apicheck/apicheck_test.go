package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedAPI fails when a public package's API differs from its dump
// under api/: the change must be deliberate (make api) and in CHANGELOG.md.
func TestCommittedAPI(t *testing.T) {
	report, err := run("../..", "../..", false)
	if err != nil {
		t.Fatal(err)
	}
	if report != "" {
		t.Fatal("\n" + report)
	}
}

// TestReportsChanges proves the check sees each kind of change: a changed
// signature, an added method, a removed field and a changed constant value,
// and that lines which did not change stay out of the report's changes.
func TestReportsChanges(t *testing.T) {
	const fixture = module + "internal/apicheck/testdata/"
	dumps, err := load(".", fixture+"before", fixture+"after")
	if err != nil {
		t.Fatal(err)
	}
	// The header names the package's path, which differs by construction.
	body := func(dump string) string { _, rest, _ := strings.Cut(dump, "\n"); return rest }
	d := diff(body(dumps[fixture+"before"]), body(dumps[fixture+"after"]))
	changed := map[string]bool{}
	for _, line := range strings.Split(d, "\n") {
		if strings.HasPrefix(line, "-") || strings.HasPrefix(line, "+") {
			changed[line] = true
		}
	}
	want := []string{
		`-func New(cfg Config) (*Client, error)`,
		`+func New(cfg *Config) (*Client, error)`,
		`+func (*Client) Close() error`,
		"-\tRetries int `json:\"retries\"`",
		`-const ModeSlow Mode = "slow"`,
		`+const ModeSlow Mode = "slower"`,
	}
	for _, w := range want {
		if !changed[w] {
			t.Errorf("diff lacks %q; diff:\n%s", w, d)
		}
	}
	if len(changed) != len(want) {
		t.Errorf("diff has %d changed lines, want %d:\n%s", len(changed), len(want), d)
	}
	if diff(dumps[fixture+"after"], dumps[fixture+"after"]) != "" {
		t.Error("equal dumps give a diff")
	}
}

// TestReportNamesPackageAndHint checks what a developer sees when a dump
// is stale (the package, the hint and the diff) and that -write makes the
// check pass.
func TestReportNamesPackageAndHint(t *testing.T) {
	out := t.TempDir()
	if _, err := run("../..", out, true); err != nil {
		t.Fatal(err)
	}
	if report, err := run("../..", out, false); err != nil || report != "" {
		t.Fatalf("after -write: report %q, err %v", report, err)
	}
	file := filepath.Join(out, apiFile("dispatch"))
	dump, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Replace(string(dump), "func NewSigner(", "func NewSignerOld(", 1)
	if err := os.WriteFile(file, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	report, err := run("../..", out, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dispatch: " + hint, "-func NewSignerOld(", "+func NewSigner("} {
		if !strings.Contains(report, w) {
			t.Errorf("report lacks %q:\n%s", w, report)
		}
	}
	if strings.Contains(report, "outbox:") {
		t.Errorf("report names an unchanged package:\n%s", report)
	}
}
