package worker_test

import (
	"context"
	"fmt"
	neturl "net/url"
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
	if session == "off" || session == "local" && standbys != "" {
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

// With a synchronous standby, a recording at the default setting waits
// for the standby's flush, unkeyed ones included: a failover to the
// standby then sends again no more than before recordings of unkeyed
// results stopped waiting for the disk. A keyed one waits for it under
// local and off too (raised to on), so that a failover keeps every key's
// order; an unkeyed one keeps the operator's setting. One throwaway
// server and its standby hold a database per setting.
func TestRecordingsWaitForASynchronousStandby(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	standby := cluster.AddSynchronousStandby(t)
	for _, c := range []struct{ session, unkeyed, keyed string }{
		{"", "on", "on"},
		{"local", "local", "on"},
		{"off", "off", "on"},
		{"remote_write", "remote_write", "remote_write"},
	} {
		name := c.session
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := cluster.URL(t) + "&pool_max_conns=10"
			if c.session != "" {
				url = withSessionSetting(t, url, "synchronous_commit", c.session)
			}
			s := sink.Start()
			t.Cleanup(s.Close)
			ob, _ := outbox.New(nil)
			seen := recordingCommits(t, bundle{pool: pgtest.Connect(t, url), outbox: ob, sink: s})
			want := map[string]bool{"unkeyed " + c.unkeyed: true, "keyed " + c.keyed: true, "both " + c.keyed: true}
			for k := range want {
				if seen[k] == 0 {
					t.Errorf("no recording of %s", k)
				}
			}
			if len(seen) != len(want) || t.Failed() {
				t.Fatalf("recordings by kind and synchronous_commit: %v; want %v", seen, want)
			}
			t.Logf("recordings: %v; the standby's flush %d bytes behind at the end", seen, standby.FlushLag(t))
		})
	}
}

// withSessionSetting adds "-c name=value" to the options parameter of a
// URL, which PostgreSQL applies to every session it opens: the one the
// URL has (OUTBOXD_TEST_DATABASE_URL's) is kept, and the other parameters
// are left as written (pgx reads a URL as libpq does, not as a web form:
// a + is itself, and a ; no separator).
func withSessionSetting(t *testing.T, url, name, value string) string {
	t.Helper()
	base, query, _ := strings.Cut(url, "?")
	setting := "-c " + name + "=" + value
	var pairs []string
	if query != "" {
		pairs = strings.Split(query, "&")
	}
	for i, p := range pairs {
		if v, ok := strings.CutPrefix(p, "options="); ok {
			old, err := neturl.PathUnescape(v)
			if err != nil {
				t.Fatalf("options in %s: %v", url, err)
			}
			pairs[i] = "options=" + escapeValue(old+" "+setting)
			return base + "?" + strings.Join(pairs, "&")
		}
	}
	return base + "?" + strings.Join(append(pairs, "options="+escapeValue(setting)), "&")
}

// escapeValue escapes a URL query value for pgx: = and spaces too (as
// %3D and %20; a + of the value as %2B).
func escapeValue(v string) string {
	return strings.ReplaceAll(neturl.QueryEscape(v), "+", "%20")
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
