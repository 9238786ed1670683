package worker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/outboxd/outboxd/internal/wakeup"
)

// wakeFor wakes the lanes a payload names (one lane, a bitmask, lane 31
// included), only of the destinations its filter (the mask's high bits)
// names when it has one; anything else wakes every lane of every
// destination.
func TestWakeForPayloads(t *testing.T) {
	d := &Dispatcher{runners: map[Lane]*laneRunner{}}
	for _, dest := range []string{"a", "b"} {
		for lane := range numLanes {
			d.runners[Lane{Destination: dest, Lane: lane}] = &laneRunner{wakeCh: make(chan struct{}, 1), destBit: wakeup.DestBit(dest)}
		}
	}
	a, b := wakeup.DestBit("a"), wakeup.DestBit("b")
	if a == b {
		t.Fatal("the test needs two destinations with different bits")
	}
	woken := func() []string {
		var out []string
		for k, r := range d.runners {
			select {
			case <-r.wakeCh:
				out = append(out, fmt.Sprintf("%s/%d", k.Destination, k.Lane))
			default:
			}
		}
		slices.Sort(out)
		return out
	}
	m := func(lanes, dests uint32) string { return fmt.Sprintf("m%d", uint64(dests)<<32|uint64(lanes)) }
	for _, c := range []struct {
		payload string
		want    int
		named   []string // when set, exactly these
	}{
		{"7", 2, []string{"a/7", "b/7"}},
		{"m2147483648", 2, []string{"a/31", "b/31"}},
		{"m2147483657", 6, nil},
		{m(1<<7, a), 1, []string{"a/7"}},
		{m(5, b), 2, []string{"b/0", "b/2"}},
		{m(5, a|b), 4, []string{"a/0", "a/2", "b/0", "b/2"}},
		{m(1<<7, ^(a | b)), 0, nil}, // other destinations' commits
		{"junk", 64, nil},
		{"", 64, nil},
	} {
		d.wakeFor(c.payload)
		got := woken()
		if len(got) != c.want || (c.named != nil && !slices.Equal(got, c.named)) {
			t.Fatalf("payload %q woke %v, want %d runners %v", c.payload, got, c.want, c.named)
		}
	}
}
