package outbox_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/outbox"
)

// CountDead counts what RequeueIDs then changes, and RequeueIDs and
// PurgeDeadIDs return exactly the ids they changed; live messages are never
// touched.
func TestDeadLetterOpsReturnWhatTheyChanged(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var ids []uuid.UUID
	for range 4 {
		e, err := b.outbox.Enqueue(ctx, b.pool, msg("email-api"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead' WHERE id = ANY($1)`, ids[:3]); err != nil {
		t.Fatal(err)
	}
	all := outbox.Filter{Destination: "email-api"}
	if n, err := b.outbox.CountDead(ctx, b.pool, all); err != nil || n != 3 {
		t.Fatalf("CountDead = %d, %v; want 3", n, err)
	}
	got, err := b.outbox.RequeueIDs(ctx, b.pool, outbox.Filter{IDs: ids[:2]})
	slices.SortFunc(got, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	want := slices.Clone(ids[:2])
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("RequeueIDs = %v, %v; want %v", got, err, want)
	}
	got, err = b.outbox.PurgeDeadIDs(ctx, b.pool, all)
	if err != nil || len(got) != 1 || got[0] != ids[2] {
		t.Fatalf("PurgeDeadIDs = %v, %v; want [%s]", got, err, ids[2])
	}
	if n := b.count(t); n != 3 {
		t.Fatalf("%d messages left, want 3 (two requeued, one never dead)", n)
	}
}

// PauseDestination reports whether it paused; ResumeDestination undoes it.
func TestPauseDestination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		if changed, err := b.outbox.PauseDestination(ctx, b.pool, "email-api", "maintenance"); err != nil || changed != want {
			t.Fatalf("pause #%d: %v, %v; want %v", i+1, changed, err, want)
		}
	}
	paused, err := b.outbox.PausedDestinations(ctx, b.pool)
	if err != nil || len(paused) != 1 || paused[0].Name != "email-api" || paused[0].Reason != "maintenance" {
		t.Fatalf("paused: %+v, %v", paused, err)
	}
	if err := b.outbox.ResumeDestination(ctx, b.pool, "email-api"); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.outbox.PauseDestination(ctx, b.pool, "email-api", "again"); err != nil || !changed {
		t.Fatalf("pause after resume: %v, %v", changed, err)
	}
}

// DeadIDs lists, sorted, exactly the dead letters a requeue with the same
// filter changes, and the ordering and idempotency keys narrow both.
func TestDeadIDsAndKeyFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var ids []uuid.UUID
	for i, key := range []string{"contact-1", "contact-1", "contact-2"} {
		m := msg("email-api")
		m.OrderingKey, m.IdempotencyKey = key, key+"-"+string(rune('a'+i))
		e, err := b.outbox.Enqueue(ctx, b.pool, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead'`); err != nil {
		t.Fatal(err)
	}
	byKey := outbox.Filter{OrderingKey: "contact-1"}
	got, err := b.outbox.DeadIDs(ctx, b.pool, byKey)
	want := slices.Clone(ids[:2])
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("DeadIDs(ordering key) = %v, %v; want %v", got, err, want)
	}
	if got, err := b.outbox.DeadIDs(ctx, b.pool, outbox.Filter{IdempotencyKey: "contact-2-c"}); err != nil || len(got) != 1 || got[0] != ids[2] {
		t.Fatalf("DeadIDs(idempotency key) = %v, %v; want [%s]", got, err, ids[2])
	}
	requeued, err := b.outbox.RequeueIDs(ctx, b.pool, byKey)
	slices.SortFunc(requeued, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if err != nil || !slices.Equal(requeued, want) {
		t.Fatalf("RequeueIDs(ordering key) = %v, %v; want %v", requeued, err, want)
	}
}
