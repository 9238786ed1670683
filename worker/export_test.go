package worker

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// WalkGap is walkGap.
var WalkGap = walkGap

// SetWalkPace replaces walkPace for d, and paces every walk however short
// (walkFree 0); call it before Start.
func SetWalkPace(d *Dispatcher, pace int) { d.walkPace, d.walkFree = pace, 0 }

// SetDownQuiet replaces downQuiet for d (how long a destination that
// keeps failing must have answered nothing to count as down); call it
// before Start.
func SetDownQuiet(d *Dispatcher, quiet time.Duration) { d.downQuiet = quiet }

// LastWalk is what the pace of lane's runner counts a walk to take (the
// shorter of its last two), 0 before its second.
func LastWalk(d *Dispatcher, lane Lane) time.Duration {
	d.mu.Lock()
	r := d.runners[lane]
	d.mu.Unlock()
	if r == nil {
		return 0
	}
	return time.Duration(r.walk.took.Load())
}

// SetListenSteady replaces listenSteady for d (how long a listening
// session must last for its drop to reset the reconnect wait); call it
// before Start.
func SetListenSteady(d *Dispatcher, steady time.Duration) { d.listenSteady = steady }

// SetLastWalk makes every runner of d count its walks to take took, as
// after walks over a large backlog: with SetWalkPace, its sweep walks are
// then 30 s apart. A parked runner keeps it (it does not walk).
func SetLastWalk(d *Dispatcher, took time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.runners {
		r.walk.took.Store(int64(took))
	}
}

// QueuedDeliveries is how many deliveries wait in the pool of dest.
func QueuedDeliveries(d *Dispatcher, dest string) int {
	p := d.pools[dest]
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) - p.head
}

// HasRunner says whether lane has a runner in d's runners: stopRunner takes
// it out just before it tells it to stop.
func HasRunner(d *Dispatcher, lane Lane) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runners[lane] != nil
}

// ExpireRunner does to lane's runner what renew does when it finds the
// lease lost, and returns the channel closed once the runner stopped (nil
// when the lane has none).
func ExpireRunner(d *Dispatcher, lane Lane) <-chan struct{} {
	d.mu.Lock()
	r := d.runners[lane]
	d.mu.Unlock()
	if r == nil {
		return nil
	}
	d.leaseGone(r)
	return r.stopped
}

// LoseRecordingAnswers makes the next n recordings of d that commit fail
// as if their answer were lost (the connection broken after the commit);
// call it before Start.
func LoseRecordingAnswers(d *Dispatcher, n int32) {
	var left atomic.Int32
	left.Store(n)
	d.answerLost = func() error {
		if left.Add(-1) >= 0 {
			return errors.New("unexpected EOF (the answer of a committed recording, lost)")
		}
		return nil
	}
}

// HotStatements are the statements of d that queryGeneric runs: the
// claims and the recording, as d sends them.
func HotStatements(d *Dispatcher) []string {
	return []string{d.q.claim, d.q.claimRetries, d.q.claimAround, d.q.claimRetriesAround, d.q.record}
}

// GateBalancing gives hold and release for d's lane balancing (a held
// gate stops it before its next round, as a frozen process would; release
// may be called again), and a channel that receives when the unserved
// check waits for a heartbeat while the gate is held; call it before
// Start.
func GateBalancing(d *Dispatcher) (hold, release func(), awaiting <-chan struct{}) {
	var (
		mu   sync.Mutex
		gate = make(chan struct{})
		held bool
		ch   = make(chan struct{}, 1)
	)
	close(gate)
	d.balanceGate = func() {
		mu.Lock()
		g := gate
		mu.Unlock()
		<-g
	}
	d.awaiting = func() {
		mu.Lock()
		defer mu.Unlock()
		if held {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	hold = func() {
		mu.Lock()
		defer mu.Unlock()
		if !held {
			held, gate = true, make(chan struct{})
			select { // a signal from before the hold says nothing
			case <-ch:
			default:
			}
		}
	}
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		if held {
			held = false
			close(gate)
		}
	}
	return hold, release, ch
}

// SinceHeartbeat is how long ago d's last successful heartbeat began.
func SinceHeartbeat(d *Dispatcher) time.Duration {
	return d.mono() - time.Duration(d.heartbeatAt.Load())
}

// ProbeListener reports, on the channel it returns, whether each probe
// arrived; with sendTo set, probes go to that channel instead, which no
// listener listens to (as through a transaction pooler: they never
// arrive); every, if set, is the time between probes. Call it before
// Start.
func ProbeListener(d *Dispatcher, sendTo string, every time.Duration) <-chan bool {
	ch := make(chan bool, 16)
	if sendTo != "" {
		d.probeSendTo = sendTo
	}
	if every > 0 {
		d.probeEvery = every
	}
	d.probed = func(arrived bool) {
		select {
		case ch <- arrived:
		default:
		}
	}
	return ch
}
