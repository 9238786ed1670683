package inbox

import (
	"maps"
	"slices"
)

// warnUnknownSources logs, loudly, the per-source keys of the inbox's
// Config that name no source of this receiver: a misspelled
// SourceRedactHeaders key stores the secret header it meant to drop. It
// warns rather than fails because an Inbox may serve several receivers, or
// Record calls of sources that have no receiver.
func (rc *Receiver) warnUnknownSources() {
	c := rc.inbox.cfg
	for field, keys := range map[string][]string{
		"SourceTTL":           slices.Collect(maps.Keys(c.SourceTTL)),
		"SourceRedactHeaders": slices.Collect(maps.Keys(c.SourceRedactHeaders)),
		"SourceKeepHeaders":   slices.Collect(maps.Keys(c.SourceKeepHeaders)),
	} {
		var unknown []string
		for _, k := range keys {
			if rc.sources[k] == nil {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			rc.log.Warn("inbox Config."+field+" names sources this receiver does not have: misspelled? (fine if another receiver, or Record, uses them)",
				"unknown", unknown, "sources", slices.Sorted(maps.Keys(rc.sources)))
		}
	}
}
