//go:build !linux

package outbox

import "time"

// shortTimer waits with the runtime's timers: elsewhere than Linux they
// are not rounded up to a millisecond (see sleep_linux.go).
type shortTimer struct{}

func newShortTimer() shortTimer { return shortTimer{} }

func (shortTimer) sleep(d time.Duration) { time.Sleep(d) }

func (shortTimer) close() {}

// precise reports false: the runtime's timers are used (tests).
func (shortTimer) precise() bool { return false }
