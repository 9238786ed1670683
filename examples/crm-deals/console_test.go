package main

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// make demo ends by printing the console's URL with the run's credentials,
// and that URL is the one served: with 127.0.0.1:9500 taken, it prints the
// port it got instead (showConsole signs in through the printed URL before
// printing it, and fails if that does not work).
func TestDemoPrintsTheConsoleItServes(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:9500")
	if err == nil {
		t.Cleanup(func() { _ = taken.Close() })
	}
	var out strings.Builder
	if err := showConsole(context.Background(), &out, pgtest.Pool(t), false); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`console: http://(127\.0\.0\.1:\d+)/  user demo, password ([A-Z2-7]{26}) \(drawn for this run\)`).FindStringSubmatch(out.String())
	if m == nil || m[1] == "127.0.0.1:9500" {
		t.Fatalf("printed:\n%s\nwant the console's URL on the port it got (9500 is taken), user and password", out.String())
	}
	if !strings.Contains(out.String(), "http://demo:"+m[2]+"@"+m[1]+"/") || !strings.Contains(out.String(), "make demo CONSOLE=1 keeps them serving") {
		t.Fatalf("printed:\n%s", out.String())
	}
}
