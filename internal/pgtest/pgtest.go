package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/internal/pg"
	"github.com/outboxd/outboxd/migrations"
)

var (
	mu        sync.Mutex
	server    *Server
	templates = map[*Server]string{}
)

// Main acquires a server, runs the package's tests and releases the server.
// Without a server it fails the run with a message that says how to provide
// one.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	srv, err := Acquire(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer srv.Close()
	mu.Lock()
	server = srv
	mu.Unlock()
	return m.Run()
}

func current(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if server == nil {
		t.Fatal("pgtest: no server: call pgtest.Main(m) from the package's TestMain")
	}
	return server
}

// URL creates a fresh database with outboxd's migrations applied (schema
// "outboxd") and returns its URL. The database is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	return testDB(t, true)
}

// EmptyURL creates a fresh, empty database and returns its URL. It is
// dropped when t ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return testDB(t, false)
}

func testDB(t testing.TB, migrated bool) string {
	t.Helper()
	url, drop, err := newDB(current(t), migrated)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return url
}

// ExamplePool is Pool for testable examples, which have no *testing.T: it
// panics on failure, and the caller defers done (closes the pool, drops the
// database).
func ExamplePool() (pool *pgxpool.Pool, done func()) {
	url, drop := exampleURL()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		drop()
		panic(err)
	}
	return pool, func() { pool.Close(); drop() }
}

func exampleURL() (url string, drop func()) {
	mu.Lock()
	srv := server
	mu.Unlock()
	if srv == nil {
		panic("pgtest: no server: call pgtest.Main(m) from the package's TestMain")
	}
	url, dropErr, err := newDB(srv, true)
	if err != nil {
		panic(err)
	}
	return url, func() {
		if err := dropErr(); err != nil {
			panic(err)
		}
	}
}

// Pool returns a pool on a fresh migrated database (see URL), closed when t
// ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, URL(t))
}

// Connect opens a pool on url, closed when t ends.
func Connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// AdminURL is the URL of the server's maintenance database.
func AdminURL(t testing.TB) string {
	t.Helper()
	return current(t).AdminURL
}

// newDB creates a database, migrated (cloned from the template) or empty,
// and returns its URL and a function that drops it.
func newDB(srv *Server, migrated bool) (string, func() error, error) {
	tmpl := "template0"
	if migrated {
		var err error
		if tmpl, err = ensureTemplate(srv); err != nil {
			return "", nil, err
		}
	}
	ctx := context.Background()
	name := "outboxd_t_" + randomSuffix()
	if err := adminExec(ctx, srv, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		return "", nil, fmt.Errorf("create database from %s: %w", tmpl, err)
	}
	url, err := withDatabase(srv.AdminURL, name)
	drop := func() error {
		if err := adminExec(ctx, srv, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return "", nil, errors.Join(err, drop())
	}
	return url, drop, nil
}

func adminExec(ctx context.Context, srv *Server, sql string) error {
	conn, err := adminConnect(ctx, srv)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// ensureTemplate builds, once per server and migration set, a database with
// the migrations applied, which test databases are cloned from. Test
// binaries of several packages run at once, so the build is serialised with
// an advisory lock and published by renaming.
func ensureTemplate(srv *Server) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if name, ok := templates[srv]; ok {
		return name, nil
	}
	ctx := context.Background()
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "outboxd_tmpl_" + hash
	conn, err := adminConnect(ctx, srv)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// Session lock, released when conn closes.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('outboxd pgtest template'))"); err != nil {
		return "", fmt.Errorf("lock: %w", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		building := name + "_building"
		for _, q := range []string{
			"DROP DATABASE IF EXISTS " + building + " WITH (FORCE)",
			"CREATE DATABASE " + building + " TEMPLATE template0",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return "", fmt.Errorf("%s: %w", q, err)
			}
		}
		url, err := withDatabase(srv.AdminURL, building)
		if err != nil {
			return "", err
		}
		if err := migrate(url); err != nil {
			return "", fmt.Errorf("migrate template: %w", err)
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
			return "", fmt.Errorf("publish template: %w", err)
		}
	}
	templates[srv] = name
	return name, nil
}

func migrate(url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	// Closed before returning: CREATE DATABASE ... TEMPLATE needs the
	// template free of sessions.
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return migrations.Up(ctx, db, "")
}

func migrationsHash() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "river %d\n", migrations.RiverVersion)
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	hashGoMigrations(h)
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// hashGoMigrations adds the migrations package's Go files (its Go
// migrations: 2, 3, 9, 12, 14, 15, 16), read from the source tree, which
// the SQL files alone do not say have changed: a server that keeps its
// databases would otherwise give tests a template of the old ones. Tests
// run in the source tree; where it is not found, the SQL files decide.
func hashGoMigrations(h io.Writer) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(self), "..", "..", "migrations", "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil {
			fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
			_, _ = h.Write(b)
		}
	}
}

func withDatabase(base, db string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse %s as a URL: %w", base, err)
	}
	u.Path = "/" + db
	if u.RawQuery == "" {
		// pgx's default, written out: tests add their parameters with &.
		u.RawQuery = "sslmode=prefer"
	}
	return u.String(), nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return strconv.Itoa(os.Getpid()) + "_" + hex.EncodeToString(b)
}

// SQLDB opens a database/sql handle on url, closed when t ends.
func SQLDB(t testing.TB, url string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	return db
}

// adminConnect connects to the maintenance database, waiting out a server
// that is momentarily at max_connections (test packages run in parallel).
func adminConnect(ctx context.Context, srv *Server) (*pgx.Conn, error) {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, srv.AdminURL); err == nil {
			return conn, nil
		}
		if pg.SQLState(err) != "53300" { // too many connections
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("connect to %s: %w", srv.Origin, err)
}
