package worker

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/outboxd/outboxd/dispatch"
)

// A claim that walks (claimSQL) probes the head of every ordering key with
// pending messages in its lane: a destination failing behind 100,000 keys
// has about 3,100 per lane, 37 ms a walk, and its 32 lanes walking every
// sweep kept most of a database core busy. Most claims need no walk: a
// sweep looks for retries fallen due (claimRetriesSQL reads those from an
// index, at the cost of what is due) and the next messages of the keys the
// last batch delivered or dead-lettered (whose keys it knows). A runner
// walks when something it cannot see that way may be due:
//
//   - its first claim, and after a claim that failed, results given up
//     (recordFailed), a pause or a wait for the schema;
//   - after a wake-up for its lane and destination (a commit: maybe a new
//     key), whether it arrived while idle or while the batch was out;
//     unless its walks are paced (5 ms or more) and its destination is
//     down: its last downAfter (32) attempts in this process failed, in
//     any lane, and none was delivered or refused (Dead) for downQuiet
//     (30 s) or since the dispatcher started. Then the commit is found by
//     the next sweep walk, or by the first claim once the destination is
//     up again, whichever comes first. A down destination that keeps
//     receiving commits behind its keys' heads walked once per commit,
//     finding nothing new (bench-backlog -down-rate), and a new key's
//     message would only fail. A destination that fails some keys (a
//     tenant, a shard) and delivers others is not down: its healthy keys'
//     new messages go out at once, however many retries fail beside them.
//     A wake-up that names no destination (a requeue, a reconnected
//     listener) still walks (listen.go);
//   - after a walk's batch came back full (more keys were due than it took);
//   - and on a sweep, for commits whose wake-up never came: every
//     SweepInterval, or, for a walk of walkFree (5 ms) or more, every
//     walkPace times what a walk takes when that is longer, up to
//     maxWalkGap; one lane of a destination (in this process) at a time,
//     unless a lane has
//     waited another gap for its turn.
//
// So a destination's sweep walks of 5 to 94 ms (maxWalkGap/walkPace: roughly
// 500 to 10,000 keys in a lane, at 7 to 12 us a key) take at most
// 32/walkPace (a tenth) of one database core, and a commit whose wake-up
// is lost is found within max(SweepInterval, min(walkPace x walk,
// maxWalkGap)), or twice that when the destination's other lanes keep it
// waiting for its turn; a lane whose walk takes under 5 ms walks every
// sweep, as before. What a walk takes is the shorter of the
// lane's last two: one slow walk (a new connection's first statement, a
// pause) does not stretch the gap.

// walkPace is the ratio of a lane's time between sweep walks to one walk.
const walkPace = 320

// maxWalkGap bounds the time between a lane's sweep walks.
const maxWalkGap = 30 * time.Second

// walkFree: a walk shorter than this is not paced. A walk's time is wall
// time, load included: a lane of a few keys on a busy machine would
// otherwise be paced for what its neighbours cost.
const walkFree = 5 * time.Millisecond

// walkState is a runner's record of its walks.
type walkState struct {
	next     bool          // the next claim walks
	woken    bool          // a wake-up came while the runner idled
	skipped  bool          // a wake-up did not walk (its destination down) and no walk came since
	lastAt   time.Duration // d.mono() when the last walk's claim began
	lastTook time.Duration // and how long it took
	// took is the shorter of the last two walks (0 before the second),
	// what the pace counts on (read by tests while the runner runs).
	took atomic.Int64
	// progressed: keys whose message a batch recorded delivered or dead
	// and whose next one no claim has taken since.
	progressed []string
}

// walkGap is how long after its last walk a runner walks on a sweep.
func (r *laneRunner) walkGap() time.Duration {
	return walkGap(r.d.cfg.SweepInterval, r.d.walkPace, r.d.walkFree, time.Duration(r.walk.took.Load()))
}

// walkGap is sweep for a walk under free, else max(sweep, min(pace x took,
// maxWalkGap)): see above.
func walkGap(sweep time.Duration, pace int, free, took time.Duration) time.Duration {
	if took < free {
		return sweep
	}
	return max(sweep, min(time.Duration(pace)*took, maxWalkGap))
}

// untilWalk is how long a runner may idle before its sweep walk is due;
// when it is due already (another lane of the destination had the turn),
// a retry 8 walks later, at least 100 ms, at most a sweep: 31 lanes
// waiting at once must not poll for the turn at their walk's pace.
func (r *laneRunner) untilWalk() time.Duration {
	if left := r.walk.lastAt + r.walkGap() - r.d.mono(); left > 0 {
		return left
	}
	return min(r.d.cfg.SweepInterval, max(8*time.Duration(r.walk.took.Load()), 100*time.Millisecond))
}

// mustWalk tells whether the claim starting at now walks, and whether it
// holds its destination's sweep walk turn (to give back after the claim).
// A wake-up pending on the runner is taken here: the claim's snapshot
// comes after the commit it announced. A sweep walk waits while another
// lane of the destination is on one: lanes started together would
// otherwise walk together at every gap, all cores at once for a moment
// (TestSweepWalksTakeTurns). It waits at most another gap: past twice its
// gap a lane walks without its turn.
func (r *laneRunner) mustWalk(now time.Duration) (walk, turn bool) {
	woken := r.walk.woken
	r.walk.woken = false
	select {
	case <-r.wakeCh:
		woken = true
	default:
	}
	if forced := r.mustWalkNext.Swap(false); r.walk.next || forced {
		return true, false
	}
	if woken || r.walk.skipped {
		if !r.wakeUpsPaced() {
			return true, false
		}
		// The first claim once the destination is up again walks: the
		// commit need not wait for the next sweep walk then.
		r.walk.skipped = true
	}
	since, gap := now-r.walk.lastAt, r.walkGap()
	switch {
	case since < gap:
		return false, false
	case r.d.sweepWalks[r.key.Destination].CompareAndSwap(false, true):
		return true, true
	default:
		return since >= 2*gap, false
	}
}

// A destination is down, for its wake-ups, when its last downAfter
// attempts failed (more than a batch caught by a blip, or one key
// retrying) and none was delivered or refused (Dead) for downQuiet (a
// destination that answers some keys is up for the others).
const (
	downAfter = 32
	downQuiet = 30 * time.Second
)

// wakeUpsPaced: a wake-up does not make the runner walk, since its
// destination is down and a walk is not cheap (see above).
func (r *laneRunner) wakeUpsPaced() bool {
	return time.Duration(r.walk.took.Load()) >= r.d.walkFree && r.d.down(r.key.Destination)
}

func (d *Dispatcher) down(destination string) bool {
	if d.failedInARow[destination].Load() < downAfter {
		return false
	}
	// A dispatcher that has not seen it answer since it started (a restart
	// during an outage) need not wait downQuiet: walking per commit for
	// that long behind a large backlog costs what the pacing saves.
	last := d.lastAnswered[destination].Load()
	return last == 0 || d.mono()-time.Duration(last) >= d.downQuiet
}

// walked notes a claim that walked, begun at start.
func (r *laneRunner) walked(start, took time.Duration) {
	r.walk.took.Store(int64(min(r.walk.lastTook, took)))
	r.walk.lastAt, r.walk.lastTook = start, took
	r.walk.progressed, r.walk.skipped = nil, false
}

// afterBatch updates the keys a targeted claim must look at: those the
// batch recorded delivered or dead, and those noted before that the
// batch did not take (a full batch may have left them out). Past
// maxProgressed of them, the next claim walks instead.
func (r *laneRunner) afterBatch(batch []claimed, results []result) {
	taken := map[string]bool{}
	for _, m := range batch {
		taken[m.OrderingKey] = true
	}
	keep := slices.DeleteFunc(r.walk.progressed, func(k string) bool { return taken[k] })
	// answered: the destination delivered or refused (Dead) a message; a
	// dead letter of the retry policy (a Retry past max_attempts or
	// max_age) is one more failure, however much it frees its key.
	answered, failed := false, int64(0)
	for _, res := range results {
		if res.status == "delivered" || res.status == "dead" {
			if k := res.msg.OrderingKey; k != "" && !slices.Contains(keep, k) {
				keep = append(keep, k)
			}
		}
		switch {
		case res.status == "":
			// not stored: the lease was gone
		case res.res.Outcome == dispatch.Delivered || res.res.Outcome == dispatch.Dead:
			answered = true
		case res.res.Outcome == dispatch.Retry && !res.abandoned:
			failed++
		}
	}
	if answered {
		r.d.failedInARow[r.key.Destination].Store(0)
		r.d.lastAnswered[r.key.Destination].Store(int64(r.d.mono()))
	} else {
		r.d.failedInARow[r.key.Destination].Add(failed)
	}
	// Keys the claim's byte bound left out: taken by name next, not by a
	// walk of the lane.
	for _, k := range r.cut.keys {
		if !taken[k] && !slices.Contains(keep, k) {
			keep = append(keep, k)
		}
	}
	r.walk.progressed = keep
	if len(keep) > maxProgressed {
		r.walk.next = true
	}
}

// maxProgressed bounds the keys a targeted claim looks up by name.
const maxProgressed = 1000
