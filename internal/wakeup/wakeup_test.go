package wakeup

import "testing"

// Every payload a producer of this or an earlier version sends, and what
// it wakes.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		payload      string
		lanes, dests uint32
	}{
		{"7", 1 << 7, All},                // the trigger; an earlier Enqueue
		{"31", 1 << 31, All},              // the last lane
		{"7d1024", 1 << 7, 1024},          // Enqueue without a Notifier
		{"7d2147483648", 1 << 7, 1 << 31}, // the filter's top bit
		{"m5", 5, All},                    // an earlier Notifier
		{"m2147483648", 1 << 31, All},     // lane 31 in a mask
		{"m5d1024", 5, 1024},              // the Notifier
		{"m4294967295d1", All, 1},         // every lane of one bit's destinations
		{"7d0", 1 << 7, 0},                // no destination: wakes nothing
		{"", All, All},                    // anything else: everything
		{"sentinel", All, All},            // a stranger's NOTIFY on the channel
		{"32", All, All},                  // no such lane
		{"-1", All, All},                  //
		{"m4294967296", All, All},         // more than 32 lanes
		{"7d4294967296", All, All},        // more than 32 bits
		{"m5dx", All, All},                // a filter that does not parse
		{"md", All, All},                  //
		{"d1024", All, All},               // no lane at all
		{"m5d1024d1024", All, All},        // two filters
		{"7 ", All, All},                  // no spaces
	} {
		lanes, dests := Parse(c.payload)
		if lanes != c.lanes || dests != c.dests {
			t.Errorf("Parse(%q) = lanes %#x, destinations %#x; want %#x, %#x", c.payload, lanes, dests, c.lanes, c.dests)
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
