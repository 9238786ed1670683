package outbox

import (
	"runtime"
	"testing"
	"time"
)

// The Notifier's sub-millisecond wait lasts at least its time (the kernel's
// timer never fires early; how much later it wakes is bench-dispatch's
// business, not a test's), a zero wait none, and on Linux it is the
// timerfd's, not a silent fallback to the runtime's rounded timers.
func TestShortTimerWaitsItsTime(t *testing.T) {
	short := newShortTimer()
	defer short.close()
	if runtime.GOOS == "linux" && !short.precise() {
		t.Fatal("no timerfd: the Notifier's 500 µs wait would be about 1.1 ms")
	}
	for _, d := range []time.Duration{300 * time.Microsecond, 800 * time.Microsecond} {
		for range 20 {
			start := time.Now()
			short.sleep(d)
			if took := time.Since(start); took < d {
				t.Fatalf("a %v wait returned after %v", d, took)
			}
		}
	}
	short.sleep(0)
	short.sleep(-time.Second)
}

// pause reports a stop on both of its paths, the short wait's and the
// timer's, a kick that ended a timer's wait, and a wait that ran its
// course otherwise.
func TestPauseSeesStop(t *testing.T) {
	short := newShortTimer()
	defer short.close()
	running := make(chan struct{})
	for _, d := range []time.Duration{200 * time.Microsecond, 5 * time.Millisecond} {
		if ok, _ := pause(short, d, running, nil); !ok {
			t.Fatalf("pause(%v) reported a stop that did not happen", d)
		}
	}
	kick := make(chan struct{}, 1)
	kick <- struct{}{}
	if ok, kicked := pause(short, time.Hour, running, kick); !ok || !kicked {
		t.Fatalf("a kick did not end an hour's pause as a kick (ok %v, kicked %v)", ok, kicked)
	}
	stopped := make(chan struct{})
	close(stopped)
	for _, d := range []time.Duration{200 * time.Microsecond, time.Hour} {
		if ok, _ := pause(short, d, stopped, nil); ok {
			t.Fatalf("pause(%v) missed the stop", d)
		}
	}
}
