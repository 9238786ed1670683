package console

import "testing"

func TestLaneRanges(t *testing.T) {
	t.Parallel()
	for want, in := range map[string][]int{"": nil, "0": {0}, "0-3, 7": {0, 1, 2, 3, 7}, "1, 3-4, 31": {1, 3, 4, 31}} {
		if got := laneRanges(in); got != want {
			t.Errorf("laneRanges(%v) = %q, want %q", in, got, want)
		}
	}
}
