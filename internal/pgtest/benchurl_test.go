package pgtest

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// A benchmark's -h must not print the password of $DATABASE_URL (the flag
// default did, in every benchmark); the URL still comes from it.
func TestBenchDatabaseURLHidesTheEnvironmentsPassword(t *testing.T) {
	const secret = "postgres://bench:s3cret-pw@db.example:5432/postgres"
	t.Setenv("DATABASE_URL", secret)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	url := BenchDatabaseURL(fs, "server to benchmark")
	fs.PrintDefaults()
	if strings.Contains(help.String(), "s3cret-pw") {
		t.Fatalf("help shows the password:\n%s", help.String())
	}
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if got := url(); got != secret {
		t.Fatalf("URL %q, want $DATABASE_URL's", got)
	}
	if err := fs.Parse([]string{"-database-url", "postgres://other/db"}); err != nil {
		t.Fatal(err)
	}
	if got := url(); got != "postgres://other/db" {
		t.Fatalf("URL %q, want the flag's", got)
	}
	t.Setenv("DATABASE_URL", "")
	if got := BenchDatabaseURL(flag.NewFlagSet("x", flag.ContinueOnError), "")(); got != benchLocalURL {
		t.Fatalf("URL %q, want the local server's", got)
	}
}
