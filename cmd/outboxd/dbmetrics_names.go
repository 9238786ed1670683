package main

import (
	"maps"
	"time"
)

// forgetIdleAfter is how long a destination that is not configured here
// may read all zeros before /metrics stops listing it: renamed and removed
// destinations do not stay in every scrape forever. docs/operations.md
// promises this number.
const forgetIdleAfter = time.Hour

// merge turns a collection into the series to export, c.mu held. A
// destination seen before and gone from the database reads 0 rather than
// vanishing, so an alert on it resolves and a graph shows the drop; one
// not configured here that has read all zeros for forgetIdleAfter goes.
func (c *dbCollector) merge(now map[string]destStats, at time.Time) map[string]destStats {
	inDB := maps.Clone(now)
	for name := range c.last {
		if _, ok := now[name]; !ok {
			now[name] = destStats{}
		}
	}
	for name, s := range now {
		if s != (destStats{}) || c.keep[name] {
			delete(c.zeroSince, name)
			continue
		}
		since, ok := c.zeroSince[name]
		if !ok {
			c.zeroSince[name] = at
		} else if at.Sub(since) >= forgetIdleAfter {
			delete(now, name)
		}
	}
	// A forgotten name the database no longer lists needs no clock.
	for name := range c.zeroSince {
		if _, listed := inDB[name]; !listed {
			if _, shown := now[name]; !shown {
				delete(c.zeroSince, name)
			}
		}
	}
	return now
}
