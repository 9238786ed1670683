package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A recording of unkeyed results only commits without waiting for its WAL
// flush; one with any keyed result waits, as every recording did before:
// once it is stored, the key's next message is sent, and a server crash
// that lost it would send the earlier message again after its successor.
// A statement trigger on outbox_messages sees the setting in force in each
// recording's own transaction, and whether it updated a keyed message.
func TestOnlyUnkeyedRecordingsCommitAsynchronously(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `
CREATE TABLE recording_commits (keyed bool NOT NULL, mode text NOT NULL);
CREATE FUNCTION note_recording_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO recording_commits
    SELECT bool_or(ordering_key IS NOT NULL), current_setting('synchronous_commit') FROM changed
    HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE TRIGGER note_recording_commit AFTER UPDATE ON outboxd.outbox_messages
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_recording_commit();`); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config(t, nil))
	// Unkeyed first, then keyed, then both in one transaction (a batch
	// that may hold both kinds).
	b.enqueue(t, 40, 10, func(int) string { return "" })
	b.waitSettled(t, 20*time.Second)
	b.enqueue(t, 40, 10, func(i int) string { return fmt.Sprintf("k%d", i%4) })
	b.waitSettled(t, 20*time.Second)
	b.enqueue(t, 40, 40, func(i int) string {
		if i%2 == 0 {
			return ""
		}
		return fmt.Sprintf("k%d", i%4)
	})
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 120 {
		t.Fatalf("statuses %v, want 120 delivered", c)
	}
	seen := map[string]int{}
	rows, err := b.pool.Query(ctx, `SELECT keyed, mode FROM recording_commits`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			keyed bool
			mode  string
		)
		if err := rows.Scan(&keyed, &mode); err != nil {
			t.Fatal(err)
		}
		seen[fmt.Sprintf("keyed=%t synchronous_commit=%s", keyed, mode)]++
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(seen) != 2 || seen["keyed=false synchronous_commit=off"] == 0 || seen["keyed=true synchronous_commit=on"] == 0 {
		t.Fatalf("recordings by kind and commit mode: %v; want unkeyed ones off, keyed ones on, both seen", seen)
	}
	// The setting ended with each recording's transaction: the pool's
	// connections commit the application's statements as configured.
	for range 10 {
		var mode string
		if err := b.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&mode); err != nil || mode != "on" {
			t.Fatalf("a pool connection after the recordings: synchronous_commit %q (%v), want on", mode, err)
		}
	}
	t.Logf("recordings: %v", seen)
}
