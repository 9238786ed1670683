package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points the tests at a server of the user's.
const EnvURL = "OUTBOXD_TEST_DATABASE_URL"

// localURL is the conventional local server (trust auth, user postgres).
const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

// Server is a PostgreSQL server the tests may create databases on.
type Server struct {
	// AdminURL connects to a maintenance database as a role that may
	// create databases.
	AdminURL string
	// Origin says where the server came from, for log lines.
	Origin  string
	close   func() error
	dir     string   // a throwaway cluster's files
	cluster *cluster // a throwaway cluster, which tests may restart
}

// Close releases the server (stops a throwaway one).
func (s *Server) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// source is one way of getting a server. ok=false means "not available
// here, try the next one"; err then says why.
type source struct {
	name  string
	start func(ctx context.Context) (*Server, error)
}

func defaultSources() []source {
	return []source{
		{name: EnvURL, start: fromEnv},
		{name: "local server on 127.0.0.1:5432", start: fromLocalServer},
		{name: "testcontainers-go (Docker)", start: fromTestcontainers},
		{name: "throwaway cluster from local PostgreSQL binaries", start: fromBinaries},
	}
}

var errNotConfigured = errors.New("not set")

// Acquire returns the first server the sources can give.
func Acquire(ctx context.Context) (*Server, error) {
	return acquire(ctx, defaultSources())
}

func acquire(ctx context.Context, sources []source) (*Server, error) {
	var reasons []string
	for _, s := range sources {
		srv, err := s.start(ctx)
		if err == nil {
			return srv, nil
		}
		// An explicit URL that does not work is an error, not a reason to
		// quietly test against something else.
		if s.name == EnvURL && !errors.Is(err, errNotConfigured) {
			return nil, fmt.Errorf("%s is set but unusable: %w", EnvURL, err)
		}
		reasons = append(reasons, fmt.Sprintf("  - %s: %v", s.name, err))
	}
	return nil, fmt.Errorf(`no PostgreSQL server for the tests. Tried, in order:
%s
Provide one of:
  - export %s=postgres://USER@HOST:PORT/postgres (a role allowed to CREATE DATABASE);
  - a PostgreSQL server on 127.0.0.1:5432 with trust auth for user postgres;
  - a running Docker engine (testcontainers-go starts postgres:16-alpine);
  - the PostgreSQL server binaries (Debian: apt-get install postgresql) for a throwaway cluster`,
		strings.Join(reasons, "\n"), EnvURL)
}

func fromEnv(ctx context.Context) (*Server, error) {
	url := os.Getenv(EnvURL)
	if url == "" {
		return nil, errNotConfigured
	}
	if err := ping(ctx, url); err != nil {
		return nil, err
	}
	return &Server{AdminURL: url, Origin: EnvURL}, nil
}

func fromLocalServer(ctx context.Context) (*Server, error) {
	if err := ping(ctx, localURL); err != nil {
		return nil, err
	}
	return &Server{AdminURL: localURL, Origin: "127.0.0.1:5432"}, nil
}

func ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}
