package worker

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/redact"
)

// deliver sends a batch: ordering keys concurrently, each key's messages
// one at a time in sequence, stopping a key at its first message that is
// neither delivered nor dead, and every key once the lease is gone.
// Messages not attempted get no result. A destination that bounds its own
// calls in flight gets them through its deliveryPool (pool.go); any other
// gets a goroutine per key.
//
// It returns the batch's results, or, when some of its keys are still
// being sent stragglerAfter after it began (a destination that hangs on
// one request), the results so far and those keys as a straggler: the
// runner records what is done and claims again around them, so that one
// slow request holds up its own key only, not the lane's other messages
// for the destination's whole timeout (an operator's trial).
func (r *laneRunner) deliver(batch []claimed) ([]result, *straggler) {
	groups := groupByKey(batch)
	out := newBatchResults(len(groups))
	unhook := func() {}
	if p := r.d.pools[r.key.Destination]; p != nil {
		p.submit(r, groups, out)
		// Once the lease is gone, or the runner is told to stop, what
		// still waits for the pool is not waited for (it would not be
		// sent: see attempt): only the attempts in flight are.
		leaseGone := context.AfterFunc(r.leaseCtx, func() { p.drop(out) })
		stopped := context.AfterFunc(r.stopCtx, func() { p.drop(out) })
		unhook = func() { leaseGone(); stopped() }
	} else {
		out.done.Add(len(groups))
		for i, g := range groups {
			go func() {
				defer out.end(i)
				for len(g) > 0 {
					g = r.deliverNext(g, out)
				}
			}()
		}
	}
	ended := make(chan struct{})
	go func() { out.done.Wait(); close(ended) }()
	if r.waitBatch(ended) {
		unhook()
		return out.results, nil
	}
	s := &straggler{out: out, groups: groups, freed: make([]bool, len(groups)), unhook: unhook}
	out.mu.Lock()
	done := slices.Clone(out.results)
	s.from = len(out.results)
	copy(s.freed, out.ended) // their results are in done
	// From now on each group's end wakes the runner, to record it and
	// free its key.
	out.notify = r.stragglerEnded
	out.mu.Unlock()
	return done, s
}

// deliverNext attempts the first of a key's messages and returns the ones
// to send after it: none once the key must stop (see deliver).
func (r *laneRunner) deliverNext(msgs []claimed, out *batchResults) []claimed {
	res, ok := r.attempt(msgs[0])
	if !ok {
		return nil
	}
	out.mu.Lock()
	out.results = append(out.results, res)
	out.mu.Unlock()
	if o := res.res.Outcome; o != dispatch.Delivered && o != dispatch.Dead {
		return nil
	}
	return msgs[1:]
}

// groupByKey splits a batch into its ordering keys' messages, in the order
// of their first message; each unkeyed message is a group of its own (a
// slice of batch: no copy).
func groupByKey(batch []claimed) [][]claimed {
	groups := make([][]claimed, 0, len(batch))
	var at map[string]int // keyed groups' places in groups
	for i, m := range batch {
		if m.OrderingKey == "" {
			groups = append(groups, batch[i:i+1:i+1])
			continue
		}
		if at == nil {
			at = map[string]int{}
		}
		if g, ok := at[m.OrderingKey]; ok {
			groups[g] = append(groups[g], m)
			continue
		}
		at[m.OrderingKey] = len(groups)
		groups = append(groups, []claimed{m})
	}
	return groups
}

// leaseValid reports whether the lease still holds. It reads the deadline
// itself rather than waiting for the watchdog: after a freeze (SIGSTOP, a
// long pause) the goroutine that resumes first may be this one.
func (r *laneRunner) leaseValid() bool {
	return r.leaseCtx.Err() == nil && r.d.mono() < time.Duration(r.deadline.Load())
}

// leaseLost says the lease ran out, or the database no longer has it as
// ours (before a stop's budget cut everything off, abortCtx, or after).
// The second clause would read a plain stop's end as a loss after run's
// deferred cancel; finishStragglers, its only late caller, runs before it.
func (r *laneRunner) leaseLost() bool {
	return r.lost.Load() || (!r.leaseValid() && r.d.abortCtx.Err() == nil)
}

// attempt delivers one message; ok=false means it was not attempted (the
// lease is gone, or the destination is paused) and stays as it is.
func (r *laneRunner) attempt(m claimed) (result, bool) {
	// Told to stop (Stop, or the lane handed to another dispatcher): the
	// attempts in flight finish and are recorded, but none starts; the
	// rest of the batch stays pending for the lane's next holder, where
	// sending it all made a graceful stop behind a slow destination last
	// the whole batch (a trial's: 71 messages, 23 s).
	if r.stopping() || !r.leaseValid() || r.d.isPaused(m.Destination) {
		return result{}, false
	}
	start := r.d.mono()
	r.d.delivering.Add(1)
	res := known(r.deliverOne(m))
	r.d.delivering.Add(-1)
	out := result{msg: m, res: res, started: start, duration: r.d.mono() - start}
	out.abandoned = res.Outcome == dispatch.Retry && r.leaseCtx.Err() != nil
	if out.abandoned {
		r.d.abandoned.Add(1)
	}
	if res.Outcome == dispatch.Pause {
		r.d.pauseDestination(m.Destination, res)
	}
	r.d.cfg.Metrics.observe(out)
	return out, true
}

// deliverOne calls the destination, turning a panic in it (a bug in a
// user's Destination) into a Retry: one bad destination must not kill the
// process and every other destination with it, and retrying loses nothing.
func (r *laneRunner) deliverOne(m claimed) (res dispatch.Result) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		// The panic value is the user's free text: short, storable like
		// any error, and without the secrets it may quote.
		what := clean(redact.Secrets(fmt.Sprint(v)), 200)
		res = dispatch.Result{Outcome: dispatch.Retry, Err: fmt.Errorf("destination panicked: %s", what)}
		if ok, held := r.d.logs.Allow(m.Destination + "/panic"); ok {
			r.d.log.Error("destination panicked; the attempt is recorded as a retry", "destination", m.Destination,
				"message_id", m.ID, "panic", what, "stack", string(debug.Stack()), "similar_lines_left_out", held)
		}
	}()
	return r.dest.Deliver(r.leaseCtx, m.Message)
}

// known turns a Result whose Outcome is none of dispatch's (a bug in the
// Destination, often a forgotten zero value) into a Retry that says so:
// retrying loses nothing, and the attempt row, the metrics and the log
// then only see the outcomes they know.
func known(res dispatch.Result) dispatch.Result {
	switch res.Outcome {
	case dispatch.Delivered, dispatch.Retry, dispatch.Dead, dispatch.Pause:
		return res
	}
	err := fmt.Errorf("destination returned outcome %q, not one of dispatch's (treated as retry)", res.Outcome)
	if res.Err != nil {
		err = fmt.Errorf("%w: %w", err, res.Err)
	}
	res.Outcome, res.Err = dispatch.Retry, err
	return res
}
