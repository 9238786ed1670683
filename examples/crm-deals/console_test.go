package main

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// Without CONSOLE=1 the demo serves no console and prints no credentials:
// it says how to get one.
func TestDemoWithoutConsoleServesNone(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := showConsole(context.Background(), &out, pgtest.Pool(t), false); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "make demo CONSOLE=1") || strings.Contains(got, "http://") {
		t.Fatalf("printed:\n%s\nwant how to serve the console, and no console", got)
	}
}

// make demo CONSOLE=1 prints the console's URL and where its password is,
// never the password (nothing prints a secret: the demo's output lands in
// terminals, CI logs and bug reports). The URL is the one served: with
// 127.0.0.1:9500 taken, it prints the port it got (showConsole signs in
// through it before printing it). The drawn password's file is its
// owner's only, and goes when the console stops.
func TestDemoConsoleNeverPrintsItsPassword(t *testing.T) {
	t.Setenv(passwordEnv, "") // one of the operator's own would be used instead
	taken, err := net.Listen("tcp", "127.0.0.1:9500")
	if err == nil {
		t.Cleanup(func() { _ = taken.Close() })
	}
	out, stop := serveDemoConsole(t)
	m := regexp.MustCompile(`console: http://(127\.0\.0\.1:\d+)/  user demo, password in (\S+) \(drawn for this run`).FindStringSubmatch(out)
	if m == nil || m[1] == "127.0.0.1:9500" {
		t.Fatalf("printed:\n%s\nwant the console's URL on the port it got (9500 is taken) and the password's file", out)
	}
	info, err := os.Stat(m[2])
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("the password's file has mode %v, want 0600", info.Mode().Perm())
	}
	b, err := os.ReadFile(m[2])
	if err != nil {
		t.Fatal(err)
	}
	pass := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(pass) {
		t.Fatalf("the file holds %d bytes, want a drawn password", len(b))
	}
	if strings.Contains(out, pass) {
		t.Fatalf("the password was printed:\n%s", out)
	}
	base := "http://" + m[1] + "/"
	if err := signIn(context.Background(), base, "demo", pass); err != nil {
		t.Fatalf("the file's password does not sign in: %v", err)
	}
	if err := signIn(context.Background(), base, "demo", pass[1:]+"A"); err == nil {
		t.Fatal("another password signed in")
	}
	stop()
	if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
		t.Fatalf("the password's file outlived the console: %v", err)
	}
}

// A password given in $OUTBOXD_DEMO_CONSOLE_PASSWORD is used, and named,
// not printed.
func TestDemoConsoleTakesItsPasswordFromTheEnvironment(t *testing.T) {
	const pass = "a-password-of-the-operators-own-choosing"
	t.Setenv(passwordEnv, pass)
	out, stop := serveDemoConsole(t)
	defer stop()
	m := regexp.MustCompile(`console: (http://127\.0\.0\.1:\d+/)  user demo, password from \$` + passwordEnv + `\n`).FindStringSubmatch(out)
	if m == nil || strings.Contains(out, pass) {
		t.Fatalf("printed:\n%s\nwant the URL and the variable's name, not its value", out)
	}
	if err := signIn(context.Background(), m[1], "demo", pass); err != nil {
		t.Fatal(err)
	}
}

// serveDemoConsole runs showConsole as make demo CONSOLE=1 does, until it
// says it serves; stop ends it and checks it ended cleanly.
func serveDemoConsole(t *testing.T) (out string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &lines{changed: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- showConsole(ctx, w, pgtest.Pool(t), true) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the console ended with %v", err)
		}
	}
	t.Cleanup(stop)
	deadline := time.After(time.Minute)
	for !strings.Contains(w.String(), "serving until Ctrl-C") {
		select {
		case <-w.changed:
		case err := <-done:
			stopped = true
			t.Fatalf("the console ended before serving: %v; printed:\n%s", err, w.String())
		case <-deadline:
			t.Fatalf("the console did not say it serves within a minute; printed:\n%s", w.String())
		}
	}
	return w.String(), stop
}

// lines is an output that a test reads while showConsole writes it.
type lines struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A password in $OUTBOXD_DEMO_CONSOLE_PASSWORD that the console would
// refuse is refused before the storm (which takes a while), by the
// variable's name, never its value: an operator's trial got "console:
// console: Users[0] ..." after the whole run. The context given is done,
// so a check made after the demo starts its database fails otherwise.
func TestDemoRefusesAShortConsolePasswordFirst(t *testing.T) {
	t.Setenv(passwordEnv, "short1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := demo(ctx, []string{"--console"})
	if err == nil || !strings.Contains(err.Error(), "$"+passwordEnv+" is 6 bytes, want at least") || strings.Contains(err.Error(), "short1") {
		t.Fatalf("got %v, want the variable named, its length, and not its value", err)
	}
}
