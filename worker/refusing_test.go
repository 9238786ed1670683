package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// refuseUpdates makes the database refuse every update of the given
// tables (of schema outboxd) while the table refusing has a row: a
// recording, a renewal, as a database that fails them would.
func refuseUpdates(t *testing.T, b bundle, tables ...string) {
	t.Helper()
	sql := `CREATE TABLE refusing ();
CREATE FUNCTION outboxd.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT FROM refusing) THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;`
	for _, table := range tables {
		sql += "\nCREATE TRIGGER test_refuse BEFORE UPDATE ON outboxd." + table + " FOR EACH ROW EXECUTE FUNCTION outboxd.test_refuse();"
	}
	if _, err := b.pool.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// deliverBeside enqueues a message with key (one of a straggler's lane)
// and waits until it is recorded delivered: the lane claimed around the
// straggler, which it is then.
func deliverBeside(t *testing.T, b bundle, key string) {
	t.Helper()
	ctx := context.Background()
	other, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", OrderingKey: key, Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a neighbour beside the slow request, recorded", func() bool {
		var status string
		err := b.pool.QueryRow(ctx, `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, other.ID).Scan(&status)
		return err == nil && status == "delivered"
	})
}

// closeOnCleanup closes ch when t ends, unless it was closed.
func closeOnCleanup(t *testing.T, ch chan struct{}) {
	t.Cleanup(func() {
		select {
		case <-ch:
		default:
			close(ch)
		}
	})
}
