// Package wakeup is the format of the outbox channel's notifications: which
// lanes, of which destinations, may have new work. Producers (outbox.Enqueue,
// outbox.Notifier) write it; dispatchers read it.
//
// A payload names lanes and, optionally, a filter of destinations:
//
//	"7"          lane 7 of every destination (the trigger; older producers)
//	"7d1024"     lane 7 of the destinations whose bit is 1024
//	"m5"         lanes 0 and 2 (a bitmask) of every destination
//	"m5d1024"    lanes 0 and 2 of the destinations whose bit is 1024
//
// Anything else wakes every lane of every destination. Without the filter a
// failing destination's lanes were woken by every other destination's
// commits, and each woken lane walks its keys' heads: with a key per
// customer behind an outage, that walk took both cores of a small machine
// (docs/benchmarks.md, bench-backlog, many keys).
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

// Parse returns the lanes (a bitmask) and the destination filter a payload
// names; All where it names none.
func Parse(payload string) (lanes, dests uint32) {
	body, dest, filtered := strings.Cut(payload, "d")
	dests = All
	if filtered {
		d, err := strconv.ParseUint(dest, 10, 32)
		if err != nil {
			return All, All
		}
		dests = uint32(d)
	}
	if mask, ok := strings.CutPrefix(body, "m"); ok {
		m, err := strconv.ParseUint(mask, 10, 32)
		if err != nil {
			return All, All
		}
		return uint32(m), dests
	}
	lane, err := strconv.Atoi(body)
	if err != nil || lane < 0 || lane >= 32 {
		return All, All
	}
	return 1 << lane, dests
}
