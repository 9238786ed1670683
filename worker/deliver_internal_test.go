package worker

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
)

// groupByKey keeps each key's messages in their batch order, in the order
// of each key's first message, and leaves each unkeyed message alone in a
// group that appending to cannot write into the batch.
func TestGroupByKey(t *testing.T) {
	msg := func(key string, seq int64) claimed {
		return claimed{Message: dispatch.Message{ID: uuid.New(), OrderingKey: key, Seq: seq}}
	}
	batch := []claimed{msg("a", 1), msg("", 0), msg("b", 1), msg("a", 2), msg("", 0), msg("b", 2), msg("a", 3)}
	groups := groupByKey(batch)
	var got [][]string
	for _, g := range groups {
		var ids []string
		for _, m := range g {
			ids = append(ids, m.ID.String())
		}
		got = append(got, ids)
	}
	id := func(i int) string { return batch[i].ID.String() }
	want := [][]string{{id(0), id(3), id(6)}, {id(1)}, {id(2), id(5)}, {id(4)}}
	if len(got) != len(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("group %d: %v, want %v", i, got[i], want[i])
		}
	}
	if c := cap(groups[1]); c != 1 {
		t.Fatalf("an unkeyed group's capacity is %d: an append would overwrite the batch", c)
	}
}
