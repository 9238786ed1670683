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

// TestPublicAPIDocumented fails naming each exported identifier of a
// public package, struct fields and interface methods included, that has
// no doc comment.
func TestPublicAPIDocumented(t *testing.T) {
	paths := make([]string, len(public))
	for i, p := range public {
		paths[i] = module + p
	}
	missing, err := undocumented(".", paths...)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range missing {
		t.Error("no doc comment: " + m)
	}
}

// TestUndocumentedNamesEachKind runs the doc check on a fixture with one
// undocumented identifier of each kind beside documented ones.
func TestUndocumentedNamesEachKind(t *testing.T) {
	got, err := undocumented(".", module+"internal/apicheck/testdata/undocumented")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"fixture.go:8: fixture.Bare",
		"fixture.go:16: fixture.Loose",
		"fixture.go:23: fixture.Config.Name",
		"fixture.go:25: fixture.Config.Nested",
		"fixture.go:28: fixture.Config.Nested.Outer",
		"fixture.go:30: fixture.Config.Embedded",
		"fixture.go:36: fixture.Naked",
		"fixture.go:41: fixture.Config.Undo",
		"fixture.go:51: fixture.Sender.Close",
		"fixture.go:56: fixture.Stringer.String",
		"fixture.go:58: fixture.New",
	}
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A change deep inside a struct or interface gets a hunk header naming the
// enclosing type, which the unchanged context lines alone would not show;
// a hunk that shows its type line, or is outside any type, gets none.
func TestDiffNamesTheEnclosingType(t *testing.T) {
	want := "type A struct {\n\tA1 int\n}\n\ntype Config struct {\n\tA int\n\tB int\n\tC int\n\tD int\n\tE int\n}\nfunc F()\nfunc G()\nfunc H()\nfunc I()\n"
	got := strings.Replace(strings.Replace(want, "\tD int", "\tD string", 1), "func I()", "func I() error", 1)
	d := diff(want, got)
	wantDiff := "@@ type Config struct {\n\tB int\n\tC int\n-\tD int\n+\tD string\n\tE int\n}\n...\nfunc G()\nfunc H()\n-func I()\n+func I() error\n \n"
	wantDiff = strings.NewReplacer("\n\tB", "\n \tB", "\n\tC", "\n \tC", "\n\tE", "\n \tE", "\n}", "\n }", "\nfunc G", "\n func G", "\nfunc H", "\n func H").Replace(wantDiff)
	if d != wantDiff {
		t.Errorf("diff:\n%s\nwant:\n%s", d, wantDiff)
	}
}
