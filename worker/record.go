package worker

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgid"
)

// recordBatch records a batch's results, trying again after a backoff
// while the runner holds its lease and the dispatcher runs, a lane being
// handed over included: what was sent is not sent again because the
// database failed for a while (a trial's role out of connections had 94
// of 800 messages delivered twice, each batch whose recording could not
// connect sent again). A stop that comes during the backoff gets one more
// try, within the stop's budget (recordCtx); a stopping dispatcher's
// runner, or one whose lease ran out, then gives up (recordFailed).
func (r *laneRunner) recordBatch(results []result, backoff *time.Duration) error {
	err := r.record(results)
	for err != nil && r.mayRecordAgain() {
		if ok, held := r.d.logs.Allow("results failed"); ok {
			r.d.log.Warn("results not recorded (the database failed or refused them); tried again after a backoff, nothing sent again while the lane's lease holds",
				"destination", r.key.Destination, "lane", r.key.Lane, "not_recorded", len(results), "error", err, "similar_lines_left_out", held)
		}
		r.d.health.report(opRecord, err)
		if isSchemaError(err) {
			r.d.schemaFailed(err)
		}
		r.pause(*backoff)
		*backoff = min(*backoff*2, 5*time.Second)
		if r.leaseValid() {
			err = r.recordAgain(results)
		}
	}
	return err
}

// mayRecordAgain says whether results the database refused are tried
// again: the lease holds and the dispatcher runs. A runner handing its
// lane over (balancing) tries again too: it gave up at once, and the
// lane's next holder sent the batch again (a review's).
func (r *laneRunner) mayRecordAgain() bool {
	return r.leaseValid() && r.d.runCtx.Err() == nil
}

// pause is a recording's backoff: it ends early for the dispatcher's stop
// or the lease's end, not for the runner's hand-over (sleep's stopCtx),
// which would have it try again at once, over and over.
func (r *laneRunner) pause(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.d.runCtx.Done():
	case <-r.leaseCtx.Done():
	}
}

// recordAgain records results after a try that failed, which may have
// stored them and lost its answer (the connection broke after the commit):
// those it stored are taken as recorded, not stored twice (a second
// attempt row, a retry's budget used twice: a review's), and the others
// recorded.
func (r *laneRunner) recordAgain(results []result) error {
	ctx, cancel := r.recordCtx()
	defer cancel()
	ids, before := make([]pgtype.UUID, len(results)), make([]int32, len(results))
	for i, res := range results {
		ids[i], before[i] = pgid.One(res.msg.ID), int32(res.msg.attempts)
	}
	type stored struct {
		status  string
		retryMs int64
	}
	found := map[uuid.UUID]stored{}
	rows, err := r.d.pool.Query(ctx, r.d.q.recordedBefore, r.key.Destination, r.key.Lane, r.d.cfg.ID, r.token, ids, before)
	if err != nil {
		return err
	}
	var (
		id pgtype.UUID
		s  stored
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &s.status, &s.retryMs}, func() error { found[id.Bytes] = s; return nil }); err != nil {
		return err
	}
	var (
		rest []result
		at   []int
	)
	for i, res := range results {
		if _, ok := found[res.msg.ID]; !ok {
			rest, at = append(rest, res), append(at, i)
		}
	}
	if err := r.record(rest); err != nil {
		return err
	}
	for j, i := range at {
		results[i].status, results[i].retryIn = rest[j].status, rest[j].retryIn
	}
	for i, res := range results {
		s, ok := found[res.msg.ID]
		if !ok {
			continue
		}
		retryIn := time.Duration(s.retryMs) * time.Millisecond
		results[i].status, results[i].retryIn = s.status, retryIn
		r.d.cfg.Metrics.attempted(res.msg.Destination, outcomeLabel(res, s.status))
		r.d.cfg.Metrics.recorded(res, s.status)
		r.d.logResult(res, s.status, retryIn)
	}
	return nil
}

// recordFailed gives up on the results of a batch or of stragglers the
// database did not take (err): the runner stops, or its lease ran out, and
// the messages are the lane's next holder's to send, with the same keys.
// A lease that ran out is said so even when the runner was then told to
// stop (a running daemon's log read "while stopping": an operator's trial).
func (r *laneRunner) recordFailed(results []result, err error) {
	r.attempted(results)
	n := len(results)
	total := r.d.unrecorded.Add(int64(n))
	// stopping first: renew latches a loss before it stops the runner, so
	// a runner seen stopping for that reason is also seen to have lost it.
	// A dispatcher's stop tells its runners after its own start (runCtx,
	// then releaseAll): a runner not told yet is stopping too.
	stopping := r.stopping() || r.d.runCtx.Err() != nil
	if stopping && !r.leaseLost() {
		r.unrecordedAtStop(n, total, err)
		return
	}
	if ok, held := r.d.logs.Allow("results given up"); ok {
		r.d.log.Warn("results not recorded before the lane's lease ran out (the database failed); the lane's next holder sends them again, with the same idempotency keys",
			"destination", r.key.Destination, "lane", r.key.Lane, "not_recorded", n, "not_recorded_in_all", total,
			"error", err, "similar_lines_left_out", held)
	}
	r.walk.next = true
	if !stopping {
		// A stop says nothing of the dispatcher retrying: the wording
		// removed from stops once (stoprecord_test.go).
		r.d.health.report(opRecord, err)
	}
}

// attempted counts results not recorded in the attempts metric: each
// result is counted once, when the database took it (record) or when it
// was given up, never at each try.
func (r *laneRunner) attempted(results []result) {
	now := r.d.mono()
	for _, res := range results {
		status, _ := r.nextState(res, now)
		r.d.cfg.Metrics.attempted(res.msg.Destination, outcomeLabel(res, status))
	}
}

// outcomeLabel is the outcome a result is recorded and counted under.
func outcomeLabel(res result, status string) string {
	switch {
	case res.abandoned:
		return abandonedOutcome
	case status == "dead":
		// A retry that used up the policy dead-lettered the message: a
		// "retry" attempt says it is tried again.
		return string(dispatch.Dead)
	}
	return string(res.res.Outcome)
}

// record stores the results of one batch in one statement. It has a
// context of its own: results that come back while Stop runs out of
// patience (cancelled deliveries included) are still recorded.
//
// Results of unkeyed messages only are committed without waiting for the
// WAL flush (synchronous_commit off for that transaction, unless an
// operator chose another setting or the server replicates synchronously:
// recordAsyncSQL): the runner claims again without waiting for the disk,
// which after a large drain held each lane for tens of milliseconds per
// recording (docs/benchmarks.md, "Recordings that do not wait for the
// disk"). What a server crash can lose is then what a dispatcher's crash
// before the recording loses: the last moment's results, whose messages
// are sent again with the same idempotency keys. Results with an ordering
// key still wait, even where the session's default is off
// (recordSyncSQL): once recorded, the key's next message is sent, and a
// crash that lost the recording would send the earlier one again after
// it. A later synchronous commit (a keyed recording, a lease's release)
// flushes the WAL up to it, and the earlier ones with it.
func (r *laneRunner) record(results []result) error {
	if len(results) == 0 {
		return nil
	}
	ctx, cancel := r.recordCtx()
	defer cancel()
	n := len(results)
	var (
		ids       = make([]pgtype.UUID, n) // not uuid.UUID: see internal/pgid
		statuses  = make([]string, n)
		outcomes  = make([]string, n)
		delays    = make([]int64, n)
		errs      = make([]string, n)
		codes     = make([]int32, n)
		ago       = make([]int64, n)
		durations = make([]float64, n)
		bodies    = make([]string, n)
		before    = make([]int32, n)
	)
	now := r.d.mono()
	for i, res := range results {
		var delay time.Duration
		ids[i] = pgid.One(res.msg.ID)
		statuses[i], delay = r.nextState(res, now)
		delays[i] = delay.Milliseconds()
		outcomes[i] = outcomeLabel(res, statuses[i])
		errs[i] = clean(errText(res.res.Err), 1000)
		codes[i] = int32(res.res.StatusCode)
		ago[i] = (now - res.started).Microseconds()
		durations[i] = float64(res.duration.Microseconds()) / 1000
		bodies[i] = clean(string(res.res.Body), 4096)
		before[i] = int32(res.msg.attempts)
	}
	settings := recordAsyncSQL
	for _, res := range results {
		if res.msg.OrderingKey != "" {
			settings = recordSyncSQL
			break
		}
	}
	var got []pgtype.UUID
	err := queryAfter(ctx, r.d.pool, settings, func(rows pgx.Rows) (err error) {
		got, err = pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
		return err
	}, r.d.q.record, r.key.Destination, r.key.Lane, r.d.cfg.ID, r.token,
		ids, statuses, outcomes, delays, errs, codes, ago, durations, bodies, before)
	if err == nil && r.d.answerLost != nil {
		err = r.d.answerLost()
	}
	if err != nil {
		return err
	}
	r.d.health.report(opRecord, nil)
	// Counted whether or not the row is stored (the attempt was made), once.
	for i, res := range results {
		r.d.cfg.Metrics.attempted(res.msg.Destination, outcomes[i])
	}
	stored := make(map[uuid.UUID]bool, len(got))
	for _, id := range got {
		stored[id.Bytes] = true
	}
	if len(got) < n {
		// The lease was gone (the messages are another runner's now), or an
		// operator moved a message meanwhile: what was not stored will be
		// sent again, with the same idempotency key.
		total := r.d.unrecorded.Add(int64(n - len(got)))
		if ok, held := r.d.logs.Allow("results refused"); ok {
			r.d.log.Warn("results not recorded: the lane's lease is no longer ours (or the messages changed); they will be sent again",
				"destination", r.key.Destination, "lane", r.key.Lane, "not_recorded", n-len(got), "not_recorded_in_all", total, "similar_lines_left_out", held)
		}
	}
	for i, res := range results {
		if stored[res.msg.ID] {
			results[i].status, results[i].retryIn = statuses[i], time.Duration(delays[i])*time.Millisecond
			r.d.cfg.Metrics.recorded(res, statuses[i])
			r.d.logResult(res, statuses[i], time.Duration(delays[i])*time.Millisecond)
		}
	}
	return nil
}

// recordCtx bounds a recording. While the dispatcher runs, it waits as
// long as the lane's lease holds (the renewals have connections of their
// own), a lane handed to another dispatcher included: bounded at 5 s, a
// recording behind a lock on outbox_messages (VACUUM FULL) gave up and its
// batch was sent again once the lock went, the lease still ours (a
// review's). Once the lease is gone here (or the stop aborts), it gets a
// wind-down step (windDown) for the database's token check to decide; once
// a stop began, until the stop's deadline and at least a wind-down step
// (recordBudget).
func (r *laneRunner) recordCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu     sync.Mutex
		timers []*time.Timer
	)
	after := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		timers = append(timers, time.AfterFunc(d, cancel))
	}
	lost := context.AfterFunc(r.leaseCtx, func() { after(r.d.windDownTimeout(5 * time.Second)) })
	stopping := context.AfterFunc(r.d.runCtx, func() { after(r.d.recordBudget()) })
	return ctx, func() {
		lost()
		stopping()
		mu.Lock()
		for _, t := range timers {
			t.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// unrecordedAtStop logs results that a stopping dispatcher's runner could
// not record (its wind-down's budget ran out): unlike a running one, it
// does not try again, and the messages are the lane's next holder's to
// send. (A runner handing its lane over tries again while its lease
// holds: mayRecordAgain.)
func (r *laneRunner) unrecordedAtStop(n int, total int64, err error) {
	if ok, held := r.d.logs.Allow("unrecorded at stop"); ok {
		r.d.log.Warn("results not recorded while stopping; the messages stay pending and are sent again, with the same idempotency keys, by the lane's next holder",
			"destination", r.key.Destination, "lane", r.key.Lane, "not_recorded", n, "not_recorded_in_all", total, "error", err, "similar_lines_left_out", held)
	}
}
