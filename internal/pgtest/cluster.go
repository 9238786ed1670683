package pgtest

import (
	"context"
	"testing"
)

// Cluster is a PostgreSQL server of the test's own, started from the local
// binaries, for tests that stop or restart the server under load.
type Cluster struct {
	srv *Server
}

// NewCluster starts a throwaway cluster, stopped and removed when t ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := findBinDir()
	if err != nil {
		t.Fatalf("pgtest: a test of server restarts needs the PostgreSQL binaries: %v", err)
	}
	srv, err := startCluster(context.Background(), bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &Cluster{srv: srv}
}

// URL creates a fresh migrated database on the cluster.
func (c *Cluster) URL(t testing.TB) string {
	t.Helper()
	url, _, err := newDB(c.srv, true)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return url
}

// Stop shuts the server down; Start brings it back on the same port with
// the same data.
func (c *Cluster) Stop() { c.srv.cluster.stop() }

// Crash stops the server as a crash would (an immediate shutdown: what
// was not yet written of the WAL is lost); Start then recovers it.
func (c *Cluster) Crash() { c.srv.cluster.crash() }

// Start restarts a stopped server.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.srv.cluster.start(context.Background()); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}
