package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// The test binary doubles as the outboxd binary: with OUTBOXD_TEST_MAIN set
// it runs main, so tests can start real outboxd processes without a build.
func TestMain(m *testing.M) {
	if os.Getenv("OUTBOXD_TEST_MAIN") == "1" {
		main()
		return
	}
	// The commands these tests run are this binary, built with -race
	// under make test: such a process sleeps 1 s as it exits
	// (atexit_sleep_ms) for other goroutines' reports, which made each
	// `--help` take 1.2 s and the package minutes. Races are still
	// reported (exit status 66) without that sleep; only one that another
	// goroutine would have hit during it, at exit, goes unseen.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0")) //nolint:errcheck,gosec // only for the commands started below
	}
	pgtest.Main(m)
}

var appliedLine = regexp.MustCompile(`(?m)^up\s+\d{5} `)

type result struct {
	code           int
	stdout, stderr string
}

// outboxd runs the outboxd binary (this test binary) as a separate process.
func outboxd(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return outboxdIn(t, env, "", args...)
}

// runInWithStdin runs the outboxd binary with stdin as its standard input.
func runInWithStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return outboxdIn(t, nil, stdin, args...)
}

// outboxdIn runs the outboxd binary with extra environment and stdin, and
// returns its exit code and output.
func outboxdIn(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "OUTBOXD_TEST_MAIN=1"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// runIn runs the CLI in this process.
func runIn(args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestMigrateConcurrentProcesses(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.EmptyURL(t)
	var wg sync.WaitGroup
	results := make([]result, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = outboxd(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "up")
		}()
	}
	wg.Wait()
	applied := 0
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("process %d exited %d: %s", i, r.code, r.stderr)
		}
		applied += len(appliedLine.FindAllString(r.stdout, -1))
	}
	if applied != 16 {
		t.Fatalf("migrations applied %d times in all, want 16 (each once):\n%+v", applied, results)
	}
	db := pgtest.SQLDB(t, dbURL)
	var rows, distinct int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT version_id) FROM outboxd.outboxd_migrations WHERE version_id > 0`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != 16 || distinct != 16 {
		t.Fatalf("version table has %d rows (%d distinct), want 16", rows, distinct)
	}
	r := runIn("migrate", "version", "--database-url", dbURL)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "16" {
		t.Fatalf("version: %+v", r)
	}
}

func TestMigrateStatusDownUp(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.EmptyURL(t)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "up", "--schema", "ops"}, "00001_outboxd_core.sql"},
		{[]string{"migrate", "status", "--schema", "ops"}, "applied"},
		{[]string{"migrate", "down", "--schema", "ops", "--to", "0"}, "down"},
		{[]string{"migrate", "version", "--schema", "ops"}, "0"},
		{[]string{"migrate", "--schema", "ops", "up"}, "up"},
	} {
		r := runIn(append(step.args, "--database-url", dbURL)...)
		if r.code != 0 || !strings.Contains(r.stdout, step.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q in stdout", step.args, r.code, r.stdout, r.stderr, step.want)
		}
	}
}

func TestMigrateClearErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A role with no privilege to create a schema.
	role := "outboxd_noprivs_" + strings.ReplaceAll(strings.TrimPrefix(t.Name(), "Test"), "/", "_")
	admin := pgtest.Connect(t, pgtest.AdminURL(t))
	dbURL := pgtest.EmptyURL(t)
	if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+strings.ToLower(role)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE "+strings.ToLower(role)+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+strings.ToLower(role)) })
	u, _ := url.Parse(dbURL)
	u.User = url.User(strings.ToLower(role))
	noPrivURL := u.String()

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"bad url", []string{"migrate", "up", "--database-url", "postgres://%zz"}, nil, 2, "invalid --database-url"},
		{"unreachable", []string{"migrate", "up", "--database-url", "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"}, nil, 1, "cannot connect to PostgreSQL"},
		{"missing privileges", []string{"migrate", "up", "--database-url", noPrivURL}, nil, 1, "(SQLSTATE 42501): the role needs CREATE on the database"},
		{"no url", []string{"migrate", "up"}, []string{"DATABASE_URL="}, 2, "no database: pass --database-url, or set OUTBOXD_DATABASE_URL or DATABASE_URL"},
		{"unknown action", []string{"migrate", "sideways", "--database-url", dbURL}, nil, 2, "unknown action"},
		{"bad schema", []string{"migrate", "up", "--schema", "Bad-Name", "--database-url", dbURL}, nil, 2, "invalid schema name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := outboxd(t, tc.env, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Fatalf("stack trace in output: %s", r.stderr)
			}
			// One line of error, and for a mistake in the arguments a hint.
			if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) > 2 || len(lines) == 2 && !strings.HasPrefix(lines[1], "Run 'outboxd migrate") {
				t.Fatalf("want a one-line error, got %q", r.stderr)
			}
		})
	}
}
