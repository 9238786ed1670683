package worker

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/redact"
	"github.com/outboxd/outboxd/internal/wakeup"
)

// laneRunner drains one destination's lane while this dispatcher holds its
// lease. It never acts past the lease: its deliveries run under leaseCtx,
// which a watchdog cancels when the lease deadline (on our monotonic clock,
// never later than the database's) passes without a renewal.
type laneRunner struct {
	d       *Dispatcher
	key     Lane
	dest    dispatch.Destination
	token   int64
	wakeCh  chan struct{}
	destBit uint32 // its destination's bit in a wake-up's filter (internal/wakeup)
	// stopCtx is cancelled when the runner is told to stop (signalStop).
	stopCtx context.Context
	stop    context.CancelFunc
	stopped chan struct{}
	// mustWalkNext: a wake-up that names no destination came, or the
	// listener reconnected (listen.go, wakeAll).
	mustWalkNext atomic.Bool
	// releaseOnStop: give the lane back when the run ends (the dispatcher
	// hands it to another, or stops); not when the lease was lost.
	releaseOnStop atomic.Bool
	// finishing: the run is ending; the lease is no longer renewed for it.
	finishing atomic.Bool
	deadline  atomic.Int64 // lease deadline, as d.mono()
	// lost: the lease ran out, or the database no longer has it as ours
	// (not a stop's budget cutting everything off); latched, so that a
	// stop that comes after it does not read as the cause.
	lost     atomic.Bool
	leaseCtx context.Context
	cancel   context.CancelFunc
	walk     walkState // used by run's goroutine only
	// retries: d.mono() when each retry this runner recorded falls due,
	// soonest first (run's goroutine only). A claim woken before one is
	// due finds nothing; the idle after it must still end when it is.
	retries dueTimes
	// cut: what the last claim's byte bound left out (run's goroutine
	// only).
	cut claimCut
	// stragglers: batches' keys still being sent after stragglerAfter
	// (straggler.go; run's goroutine only); stragglerEnded is signalled
	// when one ends. goAgain: a batch's wait freed keys of theirs, or
	// failed to record their results (waitBatch), so the loop after the
	// batch goes round at once (the claim, or the settling tried again).
	stragglers     []*straggler
	stragglerEnded chan struct{}
	goAgain        bool
	// unsure: a recording of stragglers' results failed, and may have
	// stored them: the next settling looks (recordAgain).
	unsure bool
	// parked: the last walk (or idle probe) found the lane empty; the
	// runner waits for the next idle probe rather than claim (idle.go).
	// probedEmpty: a probe did, since it parked.
	parked, probedEmpty bool
}

// claimCut is what Config.BatchBytes left out of a claim: the rows it
// found due and returned without their payloads, counted per part, and
// the ordering keys of the keyed ones (afterBatch hands them to the next
// claim, which so takes them without walking the lane).
type claimCut struct {
	keyedRows, unkeyedRows int
	keys                   []string
}

func newLaneRunner(d *Dispatcher, key Lane, token int64, deadline time.Duration) *laneRunner {
	r := &laneRunner{d: d, key: key, dest: d.cfg.Destinations[key.Destination], token: token,
		wakeCh: make(chan struct{}, 1), destBit: wakeup.DestBit(key.Destination), stopped: make(chan struct{}),
		stragglerEnded: make(chan struct{}, 1)}
	r.stopCtx, r.stop = context.WithCancel(context.Background())
	r.deadline.Store(int64(deadline))
	r.leaseCtx, r.cancel = context.WithCancel(d.abortCtx)
	r.walk.next = true
	return r
}

func (r *laneRunner) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// signalStop asks the runner to end once the attempts in flight are
// recorded: it starts no other (attempt).
func (r *laneRunner) signalStop() {
	r.stop()
}

func (r *laneRunner) stopping() bool { return r.stopCtx.Err() != nil }

// extend moves the lease deadline after a renewal.
func (r *laneRunner) extend(deadline time.Duration) { r.deadline.Store(int64(deadline)) }

// expire ends the lease at once: the database no longer has it as ours.
func (r *laneRunner) expire() { r.lose() }

// lose ends the lease, latching that it was lost (leaseLost).
func (r *laneRunner) lose() {
	r.lost.Store(true)
	r.cancel()
}

// watch cancels leaseCtx when the deadline passes without an extension.
func (r *laneRunner) watch() {
	for {
		left := time.Duration(r.deadline.Load()) - r.d.mono()
		if left <= 0 {
			r.lose()
			return
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-r.leaseCtx.Done():
			t.Stop()
			return
		}
	}
}

// run claims and delivers batches until stopped or the lease is gone.
// Database errors (a restart, a failover) are retried with backoff: nothing
// is lost, since an unrecorded delivery stays pending and is sent again.
func (r *laneRunner) run() {
	defer close(r.stopped)
	defer r.d.runnerDone(r)
	defer r.release()
	defer r.finishing.Store(true)
	defer r.cancel()
	go r.watch()
	// A claim is of no use once the runner is told to stop (it starts no
	// attempt): one that waits on the database (a lock, a hang) must not
	// hold the stop to its deadline.
	claimCtx, cancelClaims := context.WithCancel(r.leaseCtx)
	defer cancelClaims()
	defer context.AfterFunc(r.stopCtx, cancelClaims)()
	// First of the deferred: the stragglers' attempts end and are recorded
	// before the lane is given back.
	defer r.finishStragglers()
	backoff := 100 * time.Millisecond
	recordBackoff := 100 * time.Millisecond // reset by a recording that worked only
	for !r.stopping() {
		if !r.leaseValid() {
			if r.d.abortCtx.Err() == nil {
				r.lose() // the deadline passed before watch saw it
			} else {
				r.cancel()
			}
			// The database may still have it as ours (a renewal that came
			// back late): give it back, under our token, so that nobody
			// waits a whole TTL for it. A no-op if another holds it now.
			r.releaseOnStop.Store(true)
			if ok, held := r.d.logs.Allow("lease ran out"); ok && r.d.abortCtx.Err() == nil {
				r.d.log.Warn("the lease of a lane ran out before it was renewed; its runner stops (another dispatcher may take the lane)",
					"destination", r.key.Destination, "lane", r.key.Lane, "similar_lines_left_out", held)
			}
			return
		}
		// Stragglers that ended are recorded first, paused or not: their
		// messages may be delivered.
		if _, err := r.settleStragglers(); err != nil {
			r.settleFailed(err, &recordBackoff)
			continue
		}
		if r.d.isPaused(r.key.Destination) || !r.d.schemaOK(claimCtx) {
			r.walk.next, r.parked = true, false
			r.idle(r.d.cfg.SweepInterval)
			continue
		}
		if r.parked {
			r.park()
			continue
		}
		claimedAt := r.d.mono()
		batch, walk, err := r.claim(claimCtx, claimedAt)
		r.walk.next = err != nil
		if err != nil {
			if !r.stopping() && r.leaseCtx.Err() == nil {
				r.d.health.report(opClaim, err)
			}
			if isSchemaError(err) {
				r.d.schemaFailed(err)
			}
			r.idle(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		r.d.health.report(opClaim, nil)
		backoff = 100 * time.Millisecond
		if len(batch) == 0 {
			r.walk.progressed = nil
			r.forgetDue(claimedAt)
			if r.parked, r.probedEmpty = r.mayPark(walk), false; !r.parked {
				r.walk.woken = r.idle(r.untilRetry(min(r.d.cfg.SweepInterval, r.untilWalk())))
			}
			continue
		}
		r.goAgain = false
		results, s := r.deliver(batch)
		if s != nil {
			r.stragglers = append(r.stragglers, s)
		}
		if s != nil {
			if err := r.record(results); err != nil {
				// Some of these are of keys the straggler still sends:
				// recorded with its results, in order, not sent again.
				s.unsettle()
				r.settleFailed(err, &recordBackoff)
				continue
			}
		} else if err := r.recordBatch(results, &recordBackoff); err != nil {
			r.recordFailed(results, err)
			continue
		}
		recordBackoff = 100 * time.Millisecond
		r.afterBatch(batch, results)
		r.forgetDue(claimedAt)
		r.noteRetries(results)
		if wait := r.nextClaimIn(batch, results, claimedAt); wait > 0 && !r.goAgain {
			// Claiming again at once would look for what this claim took
			// all of. A wake-up for this destination ends the wait.
			r.walk.woken = r.idle(r.untilRetry(min(wait, r.untilWalk())))
		} else if walk && r.keyedRows(batch) >= r.d.cfg.BatchSize {
			r.walk.next = true // more keys may have been due than the walk took
		}
	}
}

// nextClaimIn is how long a runner may wait after recording batch before
// it claims again: 0 if the claim may find messages this one did not (the
// batch was full: more were due than it took; or a keyed message was
// recorded delivered or dead: the next one of its key may be due now. An
// unkeyed message has no next one: a claim after it could only find
// commits made since, which woke the lane anyway, and at 300 messages a
// second, a batch each, it was half the claims); otherwise
// until its sweep comes round (SweepInterval after the claim: a commit
// whose notification was lost, or a retry this runner did not record (a
// lane's previous holder did), that fell due while the batch was out is
// found within SweepInterval, as README promises, where claiming at once
// found it when the batch was recorded; one it recorded is claimed at
// once, untilRetry), or until the soonest retry it recorded is due,
// whichever is first.
// A batch that made no progress and took all that was due leaves nothing
// due behind it but what time makes due and new commits (which wake the
// lane).
func (r *laneRunner) nextClaimIn(batch []claimed, results []result, claimedAt time.Duration) time.Duration {
	if keyed, unkeyed := r.full(batch); keyed || unkeyed {
		return 0
	}
	// A wake-up that did not walk while the destination was down, which
	// this batch's answers may have brought back: its commit has no other
	// wake-up coming, and the next claim walks for it (walk.go).
	if r.walk.skipped && !r.wakeUpsPaced() {
		return 0
	}
	wait := r.d.cfg.SweepInterval - (r.d.mono() - claimedAt)
	for _, res := range results {
		switch res.status {
		case "delivered", "dead":
			if res.msg.OrderingKey != "" {
				return 0
			}
		case "pending":
			wait = min(wait, res.retryIn)
		}
	}
	return wait
}

// noteRetries notes when the batch's retries fall due (a retry at once,
// after a pause or an abandoned attempt, needs no timer). Each claim
// forgets those due by its start, so a lane that never idles does not
// keep them all.
func (r *laneRunner) noteRetries(results []result) {
	now := r.d.mono()
	for _, res := range results {
		if res.status == "pending" && res.retryIn > 0 {
			heap.Push(&r.retries, now+res.retryIn)
		}
	}
}

// untilRetry shortens an idle of wait to end when the soonest retry
// recorded is due: at once when one fell due after the last claim began
// (forgetting it here left it to the sweep, when a wake-up's claim came
// just before its time).
func (r *laneRunner) untilRetry(wait time.Duration) time.Duration {
	if len(r.retries) > 0 {
		return max(min(wait, r.retries[0]-r.d.mono()), 0)
	}
	return wait
}

// forgetDue drops the retries due by now, the start of a claim, which
// took them (or its batch was full, and the next claim comes at once).
// One due since may not have been seen: untilRetry claims at once for it.
// What is left is about one per message retrying in the lane.
func (r *laneRunner) forgetDue(now time.Duration) {
	for len(r.retries) > 0 && r.retries[0] <= now {
		heap.Pop(&r.retries)
	}
}

// dueTimes is a min-heap of d.mono() times (container/heap).
type dueTimes []time.Duration

func (h dueTimes) Len() int           { return len(h) }
func (h dueTimes) Less(i, j int) bool { return h[i] < h[j] }
func (h dueTimes) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueTimes) Push(x any)        { *h = append(*h, x.(time.Duration)) }
func (h *dueTimes) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// full tells whether a batch may have left due keyed or unkeyed messages
// behind: the claim takes up to BatchSize of each (the rows BatchBytes
// cut included), and a part the byte bound cut left some.
func (r *laneRunner) full(batch []claimed) (keyed, unkeyed bool) {
	k := r.keyedRows(batch)
	u := len(batch) - (k - r.cut.keyedRows) + r.cut.unkeyedRows
	return k >= r.d.cfg.BatchSize || r.cut.keyedRows > 0, u >= r.d.cfg.BatchSize || r.cut.unkeyedRows > 0
}

// keyedRows counts the keyed rows of the claim of batch: those in it and
// those the byte bound cut.
func (r *laneRunner) keyedRows(batch []claimed) int {
	n := r.cut.keyedRows
	for _, m := range batch {
		if m.OrderingKey != "" {
			n++
		}
	}
	return n
}

// release gives the lane back, under the token it was acquired with, so it
// can never free a lane that another runner (or process) holds now.
func (r *laneRunner) release() {
	r.finishing.Store(true)
	if !r.releaseOnStop.Load() {
		return
	}
	ctx, cancel := r.d.windDown()
	defer cancel()
	if _, err := r.d.leases.Exec(ctx, r.d.q.release, r.d.cfg.ID,
		[]string{r.key.Destination}, []int16{int16(r.key.Lane)}, []int64{r.token}); err != nil {
		if ok, held := r.d.logs.Allow("release failed"); ok {
			r.d.log.Warn("releasing a lane failed; nobody renews it, so it expires within the lease TTL",
				"destination", r.key.Destination, "lane", r.key.Lane, "error", err, "similar_lines_left_out", held)
		}
	}
}

// sleep waits like idle, but a commit notification does not end it.
func (r *laneRunner) sleep(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.stopCtx.Done():
	case <-r.leaseCtx.Done():
	}
}

// idle waits for a wake-up, the timeout or a stop, and tells whether a
// wake-up ended it.
func (r *laneRunner) idle(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.wakeCh:
		return true
	case <-r.stragglerEnded: // to record it: no commit, no walk
	case <-t.C:
	case <-r.stopCtx.Done():
	case <-r.leaseCtx.Done():
	}
	return false
}

type claimed struct {
	dispatch.Message
	attempts int // before this one
	// budgetUsed counts attempts since the message was (re)queued, and age
	// is how long ago that was, on the database's clock, at claimedAt (on
	// ours): the retry policy's limits apply to them.
	budgetUsed int
	age        time.Duration
	claimedAt  time.Duration
}

// claim reads the lane's next batch, and tells whether it walked its keys'
// heads (claimSQL) or not (claimRetriesSQL, walk.go); start is d.mono()
// before it. It decides once it holds a connection: a sweep walk's turn
// is not held through a wait for one of the pool's, and the walk's pace
// counts from there (that wait says nothing about what a walk costs).
func (r *laneRunner) claim(ctx context.Context, start time.Duration) ([]claimed, bool, error) {
	conn, err := r.d.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Release()
	began := r.d.mono()
	walk, turn := r.mustWalk(start)
	batch, err := r.claimRows(ctx, conn, walk)
	if turn {
		r.d.sweepWalks[r.key.Destination].Store(false)
	}
	if err == nil {
		end := r.d.mono()
		r.d.cfg.Metrics.claimed(r.key.Destination, end-start, walk)
		if walk {
			r.walked(start, end-began)
		}
	}
	return batch, walk, err
}

func (r *laneRunner) claimRows(ctx context.Context, conn *pgxpool.Conn, walk bool) ([]claimed, error) {
	args := []any{r.key.Destination, r.key.Lane, r.d.cfg.ID, r.token, r.d.cfg.PerKeyBatch, r.d.cfg.BatchSize, r.d.cfg.BatchBytes}
	q := r.d.q.claim
	if !walk {
		q, args = r.d.q.claimRetries, append(args, r.walk.progressed)
	}
	if len(r.stragglers) > 0 {
		keys, ids := r.excluded()
		q, args = r.d.q.claimAround, append(args, keys, ids)
		if !walk {
			q = r.d.q.claimRetriesAround
		}
	}
	var batch []claimed
	err := queryGeneric(ctx, conn, func(rows pgx.Rows) (err error) {
		batch, err = r.readClaim(rows)
		return err
	}, q, args...)
	return batch, err
}

// readClaim reads a claim's rows: the batch, and what the byte bound
// cut (r.cut).
func (r *laneRunner) readClaim(rows pgx.Rows) ([]claimed, error) {
	at := r.d.mono()
	r.cut = claimCut{}
	var batch []claimed
	for rows.Next() {
		var (
			c       claimed
			id      pgtype.UUID // not uuid.UUID, which pgx scans through sql.Scanner: 3 allocations a row
			key     *string
			seq     *int64
			headers []byte
			base    int
			ageMS   int64
			cut     bool
		)
		err := rows.Scan(&id, &c.Destination, &c.Type, &key, &seq, &c.Payload, &headers,
			&c.IdempotencyKey, &c.attempts, &base, &c.CreatedAt, &ageMS, &cut)
		if err != nil {
			return nil, err
		}
		if cut { // past BatchBytes: left for the next claim
			if key == nil {
				r.cut.unkeyedRows++
			} else {
				r.cut.keyedRows++
				if !slices.Contains(r.cut.keys, *key) {
					r.cut.keys = append(r.cut.keys, *key)
				}
			}
			continue
		}
		c.ID = id.Bytes
		c.budgetUsed = c.attempts - base + 1
		c.age, c.claimedAt = time.Duration(ageMS)*time.Millisecond, at
		if key != nil {
			c.OrderingKey = *key
		}
		if seq != nil {
			c.Seq = *seq
		}
		c.Attempt = c.attempts + 1
		if err := json.Unmarshal(headers, &c.Headers); err != nil {
			return nil, fmt.Errorf("message %s: headers: %w", c.ID, err)
		}
		batch = append(batch, c)
	}
	return batch, rows.Err()
}

type result struct {
	msg      claimed
	res      dispatch.Result
	started  time.Duration // d.mono() when the attempt began
	duration time.Duration
	// abandoned: we cut the attempt off ourselves (Stop out of patience, the
	// lease ran out). It is recorded, but not held against the message.
	abandoned bool
	// status and retryIn are what record stored: the message's new status
	// and, if pending, the delay before its next attempt ("" if the result
	// was not stored).
	status  string
	retryIn time.Duration
}

// abandonedOutcome is the attempt row's outcome of an abandoned attempt.
const abandonedOutcome = "abandoned"

func (d *Dispatcher) isPaused(name string) bool {
	_, paused := d.paused.Load(name)
	return paused
}

func (d *Dispatcher) pauseDestination(name string, res dispatch.Result) {
	// Until the pause is stored, no refresh may lift it (its read would
	// not see it): it is marked as newer than any read.
	if _, already := d.paused.Swap(name, int64(math.MaxInt64)); already {
		return // another key of the batch saw the same 410
	}
	d.log.Warn("destination paused: it answered 410 Gone; resume it with 'outboxd outbox resume'", "destination", name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The reason is the destination's own words ("HTTP 410 Gone"), which
	// res.String() would repeat after the outcome and the status.
	reason := res.String()
	if res.Err != nil {
		reason = res.Err.Error()
	}
	if _, err := d.pool.Exec(ctx, d.q.pause, name, clean(redact.Secrets(reason), 500)); err != nil {
		d.log.Error("could not record the pause; other dispatchers keep sending", "destination", name, "error", err)
	}
	// From here on, reads that start later see it (or its failure).
	d.paused.CompareAndSwap(name, int64(math.MaxInt64), d.pauseGen.Add(1))
}

// nextState decides a message's status and the delay before its next
// attempt after a result; now is d.mono().
func (r *laneRunner) nextState(res result, now time.Duration) (string, time.Duration) {
	switch res.res.Outcome {
	case dispatch.Delivered:
		return "delivered", 0
	case dispatch.Dead:
		return "dead", 0
	case dispatch.Pause:
		// Not the message's fault: it waits for the destination to resume.
		return "pending", 0
	case dispatch.Retry: // the only other outcome: attempt made it known
	}
	if res.abandoned {
		return "pending", 0 // not the message's fault either
	}
	policy := r.d.cfg.retryFor(res.msg.Destination)
	age := res.msg.age + (now - res.msg.claimedAt)
	if policy.exhausted(res.msg.budgetUsed, age) {
		return "dead", 0
	}
	return "pending", policy.Backoff(res.msg.budgetUsed, res.res.RetryAfter)
}

// clean makes s storable as PostgreSQL text: valid UTF-8, no NUL, at most n
// bytes.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
