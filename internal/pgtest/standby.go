package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Standby is a streaming standby of a Cluster.
type Standby struct {
	c, primary *cluster
}

// AddSynchronousStandby starts a streaming standby of the cluster, from a
// base backup, and makes it synchronous (synchronous_standby_names '*'):
// from then on every commit that waits for its flush also waits for the
// standby's. The standby stops when t ends, before the cluster.
func (c *Cluster) AddSynchronousStandby(t testing.TB) *Standby {
	t.Helper()
	ctx := context.Background()
	primary := c.srv.cluster
	dir := filepath.Join(primary.dir, "standby")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if primary.cred != nil {
		if err := os.Chown(dir, int(primary.cred.Uid), int(primary.cred.Gid)); err != nil {
			t.Fatalf("pgtest: chown %s: %v", dir, err)
		}
	}
	s := &cluster{bin: primary.bin, dir: dir, data: filepath.Join(dir, "data"), cred: primary.cred}
	// -R writes standby.signal and the primary's address into the copy.
	backup := exec.CommandContext(ctx, filepath.Join(primary.bin, "pg_basebackup"),
		"-h", "127.0.0.1", "-p", fmt.Sprint(primary.port), "-U", "postgres",
		"-D", s.data, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	backup.SysProcAttr = &syscall.SysProcAttr{Credential: primary.cred}
	if out, err := backup.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v: %s", err, out)
	}
	var err error
	if s.port, err = freePort(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := s.start(ctx); err != nil {
		t.Fatalf("pgtest: standby: %v", err)
	}
	// Before the standby stops, the primary stops waiting for it: a
	// cleanup that commits after this one (a dispatcher started earlier
	// releasing its leases) would hang.
	t.Cleanup(func() {
		if primary.proc != nil {
			if conn, err := pgx.Connect(ctx, primary.url()); err == nil {
				_, _ = conn.Exec(ctx, `ALTER SYSTEM RESET synchronous_standby_names`)
				_, _ = conn.Exec(ctx, `SELECT pg_reload_conf()`)
				conn.Close(ctx)
			}
		}
		s.stop()
	})
	conn, err := pgx.Connect(ctx, primary.url())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '*'`); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		var sync bool
		if err := conn.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names') = '*'
		    AND EXISTS (SELECT FROM pg_stat_replication WHERE sync_state = 'sync')`).Scan(&sync); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if sync {
			return &Standby{c: s, primary: primary}
		}
		if time.Now().After(deadline) {
			t.Fatal("pgtest: the standby did not become synchronous within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FailoverURL is url (a database of the cluster) naming the standby as a
// second host, for read-write sessions only: pgx connects to whichever
// of the two accepts writes, the standby once it is promoted.
func (s *Standby) FailoverURL(t testing.TB, url string) string {
	t.Helper()
	host := fmt.Sprintf("@127.0.0.1:%d/", s.primary.port)
	if !strings.Contains(url, host) || !strings.Contains(url, "?") {
		t.Fatalf("pgtest: %s is not a URL of the cluster's", url)
	}
	both := fmt.Sprintf("@127.0.0.1:%d,127.0.0.1:%d/", s.primary.port, s.c.port)
	return strings.Replace(url, host, both, 1) + "&target_session_attrs=read-write"
}

// Promote ends the standby's recovery (pg_promote, which waits for it):
// from then on it accepts writes.
func (s *Standby) Promote(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.c.url())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	var done bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&done); err != nil || !done {
		t.Fatalf("pgtest: the standby was not promoted within 60 s (%v)", err)
	}
}

// FlushLag is how far, in bytes of WAL, the standby's flush is behind the
// primary's.
func (s *Standby) FlushLag(t testing.TB) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.primary.url())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	var lag int64
	if err := conn.QueryRow(ctx, `
SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), flush_lsn) FROM pg_stat_replication WHERE sync_state = 'sync'`).Scan(&lag); err != nil {
		t.Fatalf("pgtest: the synchronous standby: %v", err)
	}
	return lag
}
