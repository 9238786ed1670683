package worker_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
)

// A recording of unkeyed results only commits without waiting for its WAL
// flush; one with any keyed result waits, as every recording did before:
// once it is stored, the key's next message is sent, and a server crash
// that lost it would send the earlier message again after its successor.
// A statement trigger on outbox_messages sees the setting in force in each
// recording's own transaction, and which kinds of message it updated.
func TestOnlyUnkeyedRecordingsCommitAsynchronously(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var session, standbys string
	if err := b.pool.QueryRow(context.Background(), `SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')`).Scan(&session, &standbys); err != nil {
		t.Fatal(err)
	}
	unkeyed, keyed := session, session
	if session == "on" && standbys == "" {
		unkeyed = "off"
	}
	if session == "off" {
		keyed = "on"
	}
	seen := recordingCommits(t, b)
	want := map[string]bool{"unkeyed " + unkeyed: true, "keyed " + keyed: true, "both " + keyed: true}
	for k := range seen {
		if !want[k] {
			t.Errorf("a recording of %s", k)
		}
	}
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("no recording of %s", k)
		}
	}
	if t.Failed() {
		t.Fatalf("recordings by kind and synchronous_commit: %v (the session's setting %s, synchronous_standby_names %q)", seen, session, standbys)
	}
	// The setting ended with each recording's transaction: the pool's
	// connections commit the application's statements as configured.
	for range 10 {
		var mode string
		if err := b.pool.QueryRow(context.Background(), `SHOW synchronous_commit`).Scan(&mode); err != nil || mode != session {
			t.Fatalf("a pool connection after the recordings: synchronous_commit %q (%v), want %s", mode, err, session)
		}
	}
	t.Logf("recordings: %v", seen)
}

// A setting an operator chose for the dispatcher's sessions (here in the
// URL) is what every recording commits with, unkeyed ones included
// (local: the way to have every recording wait for its flush), except off
// for a recording of keyed results, which waits for its flush all the
// same (on): the key's order across a crash depends on it.
func TestRecordingsKeepTheOperatorsSynchronousCommit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ session, unkeyed, keyed string }{
		{"remote_write", "remote_write", "remote_write"},
		{"local", "local", "local"},
		{"off", "off", "on"},
	} {
		t.Run(c.session, func(t *testing.T) {
			t.Parallel()
			s := sink.Start()
			t.Cleanup(s.Close)
			ob, _ := outbox.New(nil)
			b := bundle{pool: pgtest.Connect(t, withSessionSetting(t, pgtest.URL(t)+"&pool_max_conns=10", "synchronous_commit", c.session)), outbox: ob, sink: s}
			seen := recordingCommits(t, b)
			want := map[string]bool{"unkeyed " + c.unkeyed: true, "keyed " + c.keyed: true, "both " + c.keyed: true}
			for k := range want {
				if seen[k] == 0 {
					t.Errorf("no recording of %s", k)
				}
			}
			if len(seen) != len(want) || t.Failed() {
				t.Fatalf("recordings by kind and synchronous_commit: %v; want %v", seen, want)
			}
		})
	}
}

// With a synchronous standby, every recording waits for the standby's
// flush, unkeyed ones included: a failover to the standby then sends
// again no more than before recordings of unkeyed results stopped
// waiting for the disk.
func TestRecordingsWaitForASynchronousStandby(t *testing.T) {
	t.Parallel()
	cluster, b := clusterBundle(t)
	cluster.AddSynchronousStandby(t)
	seen := recordingCommits(t, b)
	want := map[string]bool{"unkeyed on": true, "keyed on": true, "both on": true}
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("no recording of %s", k)
		}
	}
	if len(seen) != len(want) || t.Failed() {
		t.Fatalf("recordings by kind and synchronous_commit: %v; want %v", seen, want)
	}
	var lag int64
	if err := b.pool.QueryRow(context.Background(), `
SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), flush_lsn) FROM pg_stat_replication WHERE sync_state = 'sync'`).Scan(&lag); err != nil {
		t.Fatalf("the synchronous standby: %v", err)
	}
	t.Logf("recordings: %v; the standby's flush %d bytes behind at the end", seen, lag)
}

// withSessionSetting adds "-c name=value" to the URL's options, which
// PostgreSQL applies to every session it opens; an options parameter the
// URL already has (OUTBOXD_TEST_DATABASE_URL's) is kept.
func withSessionSetting(t *testing.T, raw, name, value string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", strings.TrimSpace(q.Get("options")+" -c "+name+"="+value))
	// pgx reads a + as itself, not as a space: %20 (Encode writes a + of
	// the value as %2B).
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

// recordingCommits delivers unkeyed messages, then keyed ones, then both
// in one transaction (8 keys among 300 unkeyed: a keyed lane all but
// surely claims both kinds in a batch), and counts the recordings by the
// kinds of message each updated ("unkeyed", "keyed", "both") and the
// synchronous_commit its transaction committed with.
func recordingCommits(t *testing.T, b bundle) map[string]int {
	t.Helper()
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `
CREATE TABLE recording_commits (kinds text NOT NULL, mode text NOT NULL);
CREATE FUNCTION note_recording_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO recording_commits
    SELECT CASE WHEN bool_and(ordering_key IS NOT NULL) THEN 'keyed'
                WHEN bool_or(ordering_key IS NOT NULL) THEN 'both' ELSE 'unkeyed' END,
           current_setting('synchronous_commit')
    FROM changed HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE TRIGGER note_recording_commit AFTER UPDATE ON outboxd.outbox_messages
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_recording_commit();`); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, nil))
	b.enqueue(t, 40, 10, func(int) string { return "" })
	b.waitSettled(t, 20*time.Second)
	b.enqueue(t, 40, 10, func(i int) string { return fmt.Sprintf("k%d", i%4) })
	b.waitSettled(t, 20*time.Second)
	b.enqueue(t, 340, 340, func(i int) string {
		if i%9 != 0 {
			return ""
		}
		return fmt.Sprintf("m%d", i%8)
	})
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != 420 {
		t.Fatalf("statuses %v, want 420 delivered", c)
	}
	seen := map[string]int{}
	rows, err := b.pool.Query(ctx, `SELECT kinds || ' ' || mode FROM recording_commits`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		seen[k]++
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return seen
}
