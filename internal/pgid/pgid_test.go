package pgid_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/internal/pgid"
)

func TestManyKeepsNilAndOrder(t *testing.T) {
	if pgid.Many(nil) != nil {
		t.Fatal("Many(nil) is not nil: it would match no id instead of any")
	}
	if got := pgid.Many([]uuid.UUID{}); got == nil || len(got) != 0 {
		t.Fatalf("Many(empty) = %#v, want an empty array", got)
	}
	a, b := uuid.New(), uuid.New()
	got := pgid.Many([]uuid.UUID{a, b})
	if len(got) != 2 || got[0].Bytes != a || got[1].Bytes != b || !got[0].Valid || !got[1].Valid {
		t.Fatalf("Many = %#v", got)
	}
}
