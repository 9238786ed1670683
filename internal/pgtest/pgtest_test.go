package pgtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The last resort must really work: start a cluster from the local
// binaries, migrate a template on it, clone a database, stop it, and leave
// no files behind.
func TestThrowawayClusterFromBinaries(t *testing.T) {
	ctx := context.Background()
	bin, err := findBinDir()
	if err != nil {
		t.Fatalf("this machine has no PostgreSQL binaries, which CI needs for this fallback: %v", err)
	}
	srv, err := startCluster(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	url, drop, err := newDB(srv, true)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM outboxd.inbox_events`).Scan(&n)
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("cloned database is not migrated: %v", err)
	}
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, srv.AdminURL); err == nil {
		t.Fatal("cluster still answers after Close")
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Fatalf("cluster files left in %s: %v", srv.dir, err)
	}
}

func TestNoServerFailsWithInstructions(t *testing.T) {
	t.Setenv(EnvURL, "")
	unavailable := func(reason string) func(context.Context) (*Server, error) {
		return func(context.Context) (*Server, error) { return nil, errors.New(reason) }
	}
	_, err := acquire(context.Background(), []source{
		{name: EnvURL, start: fromEnv},
		{name: "local", start: unavailable("connection refused")},
		{name: "docker", start: unavailable("no Docker engine")},
		{name: "binaries", start: unavailable("initdb not found")},
	})
	if err == nil {
		t.Fatal("acquire succeeded with no source")
	}
	for _, want := range []string{"connection refused", "no Docker engine", "initdb not found",
		"export " + EnvURL, "apt-get install postgresql"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%s", want, err)
		}
	}
}

func TestBrokenExplicitURLIsAnError(t *testing.T) {
	t.Setenv(EnvURL, "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=1")
	_, err := acquire(context.Background(), []source{
		{name: EnvURL, start: fromEnv},
		{name: "local", start: func(context.Context) (*Server, error) { return &Server{}, nil }},
	})
	if err == nil || !strings.Contains(err.Error(), EnvURL+" is set but unusable") {
		t.Fatalf("want an error naming %s, got %v", EnvURL, err)
	}
}

func TestMain(m *testing.M) {
	// These tests start their own servers; they need no shared one.
	os.Exit(m.Run())
}

// A database URL always has a query, so that tests may add parameters
// with &: an OUTBOXD_TEST_DATABASE_URL without one gets pgx's default
// sslmode written out; one with a query keeps it as written.
func TestWithDatabaseKeepsAQueryToAddTo(t *testing.T) {
	for base, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/test":                       "postgres://postgres@127.0.0.1:5432/db1?sslmode=prefer",
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable&x=a+b": "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable&x=a+b",
		"postgres://u:p%40ss@127.0.0.1:5432/?options=-c%20a%3Db":        "postgres://u:p%40ss@127.0.0.1:5432/db1?options=-c%20a%3Db",
	} {
		got, err := withDatabase(base, "db1")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
}
