package worker

import "testing"

// wakeFor decodes each payload the channel carries: one lane, a bitmask of
// lanes (lane 31 included), and anything else wakes every lane.
func TestWakeForPayloads(t *testing.T) {
	d := &Dispatcher{runners: map[Lane]*laneRunner{}}
	for lane := range numLanes {
		d.runners[Lane{Destination: "a", Lane: lane}] = &laneRunner{wakeCh: make(chan struct{}, 1)}
	}
	woken := func() []int {
		var out []int
		for k, r := range d.runners {
			select {
			case <-r.wakeCh:
				out = append(out, k.Lane)
			default:
			}
		}
		return out
	}
	for payload, want := range map[string]int{"7": 1, "m2147483648": 1, "m2147483657": 3, "junk": 32, "": 32} {
		d.wakeFor(payload)
		got := woken()
		if len(got) != want {
			t.Fatalf("payload %q woke lanes %v, want %d lanes", payload, got, want)
		}
		if payload == "m2147483648" && got[0] != 31 {
			t.Fatalf("m2147483648 woke lane %d, want 31", got[0])
		}
	}
}
