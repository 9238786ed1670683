package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outboxd/outboxd/migrations"
)

var (
	mu       sync.Mutex
	server   *Server
	template string
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
	srv := current(t)
	tmpl := ensureTemplate(t, srv)
	return createDB(t, srv, tmpl)
}

// EmptyURL creates a fresh, empty database and returns its URL. It is
// dropped when t ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return createDB(t, current(t), "template0")
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

func createDB(t testing.TB, srv *Server, tmpl string) string {
	t.Helper()
	ctx := context.Background()
	name := "outboxd_t_" + randomSuffix()
	conn := adminConn(t, srv)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		t.Fatalf("pgtest: create database from %s: %v", tmpl, err)
	}
	t.Cleanup(func() {
		c := adminConn(t, srv)
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, srv.AdminURL, name)
}

// ensureTemplate builds, once per server and migration set, a database with
// the migrations applied, which test databases are cloned from. Test
// binaries of several packages run at once, so the build is serialised with
// an advisory lock and published by renaming.
func ensureTemplate(t testing.TB, srv *Server) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if template != "" {
		return template
	}
	ctx := context.Background()
	name := "outboxd_tmpl_" + migrationsHash(t)
	conn := adminConn(t, srv)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('outboxd pgtest template'))"); err != nil {
		t.Fatalf("pgtest: lock: %v", err)
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtext('outboxd pgtest template'))") //nolint:errcheck // released with the session anyway
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if !exists {
		building := name + "_building"
		for _, q := range []string{
			"DROP DATABASE IF EXISTS " + building + " WITH (FORCE)",
			"CREATE DATABASE " + building + " TEMPLATE template0",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("pgtest: %s: %v", q, err)
			}
		}
		migrate(t, withDatabase(t, srv.AdminURL, building))
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
			t.Fatalf("pgtest: publish template: %v", err)
		}
	}
	template = name
	return name
}

func migrate(t testing.TB, url string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, db, ""); err != nil {
		t.Fatalf("pgtest: migrate template: %v", err)
	}
	// CREATE DATABASE ... TEMPLATE needs the template free of sessions.
	_ = db.Close()
}

func migrationsHash(t testing.TB) string {
	t.Helper()
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
		t.Fatalf("pgtest: hash migrations: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func adminConn(t testing.TB, srv *Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), srv.AdminURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", srv.Origin, err)
	}
	return conn
}

func withDatabase(t testing.TB, base, db string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", base, err)
	}
	u.Path = "/" + db
	return u.String()
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
