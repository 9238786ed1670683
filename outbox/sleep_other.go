//go:build !linux

package outbox

import "time"

// shortSleep waits d. Elsewhere than Linux the runtime's timers are not
// rounded up to a millisecond (see sleep_linux.go).
func shortSleep(d time.Duration) { time.Sleep(d) }
