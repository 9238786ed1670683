package outbox_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/outboxd/outboxd/outbox"
)

// The Status constants are exactly the statuses the table accepts: a
// status added by a migration without its constant fails here.
func TestStatusConstantsMatchTheSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var def string
	err := b.pool.QueryRow(context.Background(), `SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'outboxd.outbox_messages'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%status%'`).Scan(&def)
	if err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for _, m := range regexp.MustCompile(`'([a-z]+)'::text`).FindAllStringSubmatch(def, -1) {
		inSchema = append(inSchema, m[1])
	}
	ours := []string{string(outbox.StatusPending), string(outbox.StatusDelivered), string(outbox.StatusDead)}
	slices.Sort(inSchema)
	slices.Sort(ours)
	if !slices.Equal(inSchema, ours) {
		t.Fatalf("schema's statuses %v (%s), constants %v", inSchema, def, ours)
	}
}

// Get reads the status into the typed field.
func TestStoredStatusIsTyped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "d", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.outbox.Get(ctx, b.pool, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != outbox.StatusPending {
		t.Fatalf("status %q, want %q", m.Status, outbox.StatusPending)
	}
}
