// Package wakeup is the format of the outbox channel's notifications: which
// lanes, of which destinations, may have new work. Producers (outbox.Enqueue,
// outbox.Notifier) write it; dispatchers read it.
//
// A payload is "m" and a mask in decimal, up to 64 bits: its low 32 bits
// are lanes, its high 32 bits a filter of destinations (each destination has
// one bit, DestBit). A mask without high bits names no destination: those
// lanes of every destination wake. "7" (the trigger's) is lane 7 of every
// destination; anything else wakes every lane of every destination.
//
// Dispatchers of earlier versions read "m<mask>" and look at bits 0-31
// only, so with producers of this version they wake those lanes of every
// destination, as they always did; producers of earlier versions send no
// high bits, which dispatchers of this version read the same way. A rolling
// upgrade in either order neither misses nor over-wakes more than before.
//
// Without the filter a failing destination's lanes were woken by every
// other destination's commits, and each woken lane walks its keys' heads:
// with a key per customer behind an outage, that walk took both cores of a
// small machine (docs/benchmarks.md, bench-backlog, many keys).
package wakeup

import (
	"strconv"
	"strings"
)

// All is a mask with every bit set: every lane, or every destination.
const All = ^uint32(0)

// DestBit returns destination's bit in a payload's filter: one of 32, from
// an FNV-1a hash of the name, the same in every process and version. Two
// destinations may share a bit; their lanes then wake for each other's
// commits, as every destination's did before the filter.
func DestBit(destination string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(destination); i++ {
		h ^= uint32(destination[i])
		h *= 16777619
	}
	return 1 << (h % 32)
}

// Mask is the mask that names lane of destination.
func Mask(lane int, destination string) uint64 {
	return uint64(DestBit(destination))<<32 | 1<<uint(lane)
}

// Parse returns the lanes (a bitmask) and the destination filter a payload
// names; All where it names none.
func Parse(payload string) (lanes, dests uint32) {
	if mask, ok := strings.CutPrefix(payload, "m"); ok {
		m, err := strconv.ParseUint(mask, 10, 64)
		if err != nil {
			return All, All
		}
		lanes, dests = uint32(m), uint32(m>>32)
		if dests == 0 {
			dests = All
		}
		return lanes, dests
	}
	lane, err := strconv.Atoi(payload)
	if err != nil || lane < 0 || lane >= 32 {
		return All, All
	}
	return 1 << lane, All
}
