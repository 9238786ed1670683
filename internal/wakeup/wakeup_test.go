package wakeup

import (
	"strconv"
	"testing"
)

// Every payload a producer of this or an earlier version sends, and what
// it wakes.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		payload      string
		lanes, dests uint32
	}{
		{"7", 1 << 7, All},                   // the trigger; an earlier Enqueue
		{"31", 1 << 31, All},                 // the last lane
		{"m5", 5, All},                       // an earlier Notifier: no destination bits
		{"m2147483648", 1 << 31, All},        // lane 31
		{"m4398046511232", 1 << 7, 1 << 10},  // lane 7 of the destinations of bit 10
		{"m9223372036854775809", 1, 1 << 31}, // the filter's top bit (past int64)
		{"m18446744073709551615", All, All},  // every bit
		{"m12884901893", 5, 3},               // two lanes, two destinations
		{"m0", 0, All},                       // no lane: wakes nothing
		{"", All, All},                       // anything else: everything
		{"sentinel", All, All},               // a stranger's NOTIFY on the channel
		{"32", All, All},                     // no such lane
		{"-1", All, All},                     //
		{"m18446744073709551616", All, All},  // more than 64 bits
		{"m-5", All, All},                    //
		{"m5 ", All, All},                    // no spaces
		{"7d1024", All, All},                 // not a format
	} {
		lanes, dests := Parse(c.payload)
		if lanes != c.lanes || dests != c.dests {
			t.Errorf("Parse(%q) = lanes %#x, destinations %#x; want %#x, %#x", c.payload, lanes, dests, c.lanes, c.dests)
		}
	}
}

// A mask names its lane and its destination's bit, and a dispatcher of an
// earlier version, which reads bits 0-31 of "m<mask>" as lanes, sees the
// same lane (and wakes it for every destination, as it always did).
func TestMaskReadsBackInEitherVersion(t *testing.T) {
	for _, dest := range []string{"sink", "dest-41", ""} {
		for _, lane := range []int{0, 7, 31} {
			m := Mask(lane, dest)
			lanes, dests := Parse("m" + strconv.FormatUint(m, 10))
			if lanes != 1<<lane || dests != DestBit(dest) {
				t.Errorf("Mask(%d, %q) = %d reads back as lanes %#x, destinations %#x", lane, dest, m, lanes, dests)
			}
			if old := uint32(m); old != 1<<lane { // the earlier dispatcher's reading
				t.Errorf("Mask(%d, %q): an earlier dispatcher reads lanes %#x", lane, dest, old)
			}
		}
	}
}

// Producers and dispatchers of different versions must agree on each
// destination's bit: these values are the format, not an implementation
// detail (a change would make a dispatcher miss a producer's wake-ups
// until its sweep).
func TestDestBitIsStable(t *testing.T) {
	for name, bit := range map[string]uint32{
		"":        1 << 5, // the FNV-1a offset basis, 2166136261, mod 32
		"sink":    1 << 18,
		"crm":     1 << 23,
		"down":    1 << 21,
		"other":   1 << 21, // shares down's bit: each wakes for the other's commits
		"dest-41": 1 << 31,
	} {
		if got := DestBit(name); got != bit {
			t.Errorf("DestBit(%q) = %#x, want %#x", name, got, bit)
		}
	}
}
