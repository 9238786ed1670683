package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// The count of an unserved destination's messages says when it is only a
// lower bound: past its share of the row budget (pendingsql.Budget, 64,000
// rows shared by every destination's lanes), the count stops, and /readyz
// and the log said "16000 pending messages" of 2,000,000 (a trial). A
// small backlog is counted exactly.
func TestUnservedCountSaysWhenItIsALowerBound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const many, few = 40_000, 5
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
		SELECT gen_random_uuid(), CASE WHEN i <= $1::int THEN 'many' ELSE 'few' END, '\x00', 'u-' || i
		FROM generate_series(1, $1::int + $2::int) i`, many, few); err != nil {
		t.Fatal(err)
	}
	d := b.start(t, b.config(t, nil))
	var got map[string]worker.Backlog
	waitFor(t, 30*time.Second, "both unserved destinations counted", func() bool {
		got = d.Unserved()
		return len(got) == 2
	})
	if m := got["many"]; !m.Capped || m.Pending <= 0 || m.Pending >= many {
		t.Fatalf("the large backlog: %+v (of %d), want a capped lower bound", m, many)
	}
	if f := got["few"]; f.Capped || f.Pending != few {
		t.Fatalf("the small backlog: %+v, want exactly %d", f, few)
	}
}
