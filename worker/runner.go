package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/dispatch"
)

// laneRunner drains one lane while this dispatcher holds its lease.
type laneRunner struct {
	d       *Dispatcher
	lane    int
	wakeCh  chan struct{}
	stopCh  chan struct{}
	stopped chan struct{}
	once    sync.Once
	// releaseOnStop: give the lane back when the run ends (the dispatcher
	// hands it to another); not when the lease was lost.
	releaseOnStop atomic.Bool
}

func newLaneRunner(d *Dispatcher, lane int) *laneRunner {
	return &laneRunner{d: d, lane: lane, wakeCh: make(chan struct{}, 1), stopCh: make(chan struct{}), stopped: make(chan struct{})}
}

func (r *laneRunner) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// signalStop asks the runner to end after the batch in hand.
func (r *laneRunner) signalStop() {
	r.once.Do(func() { close(r.stopCh) })
}

func (r *laneRunner) stopping() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// run claims and delivers batches until stopped. Database errors (a
// restart, a failover) are retried with backoff: nothing is lost, since an
// unrecorded delivery stays pending and is sent again.
func (r *laneRunner) run() {
	defer close(r.stopped)
	defer r.release()
	// Deliveries are not tied to ctx: a stop lets the batch in hand finish.
	work := r.d.abortCtx
	backoff := 100 * time.Millisecond
	for !r.stopping() {
		batch, err := r.claim(work)
		if err != nil {
			if !r.stopping() && work.Err() == nil {
				r.d.log.Warn("claim failed; retrying", "lane", r.lane, "error", err, "in", backoff)
			}
			r.idle(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if len(batch) == 0 {
			r.idle(r.d.cfg.SweepInterval)
			continue
		}
		results := r.deliver(work, batch)
		if err := r.record(work, results); err != nil {
			r.d.log.Warn("recording results failed; those messages will be sent again", "lane", r.lane, "messages", len(results), "error", err)
			r.idle(backoff)
		}
	}
}

func (r *laneRunner) release() {
	if !r.releaseOnStop.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.d.pool.Exec(ctx, r.d.q.release, r.d.cfg.ID, []int{r.lane}); err != nil {
		r.d.log.Warn("releasing a lane failed; its lease will expire", "lane", r.lane, "error", err)
	}
}

// idle waits for a wake-up, the timeout or a stop.
func (r *laneRunner) idle(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.wakeCh:
	case <-t.C:
	case <-r.stopCh:
	}
}

type claimed struct {
	dispatch.Message
	attempts int // before this one
	// budgetUsed counts attempts since the message was (re)queued, and
	// since is when that was: the retry policy's limits apply to them.
	budgetUsed int
	since      time.Time
}

func (r *laneRunner) claim(ctx context.Context) ([]claimed, error) {
	rows, err := r.d.pool.Query(ctx, r.d.q.claim, r.lane, r.d.cfg.PerKeyBatch, r.d.cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var (
			c       claimed
			key     *string
			seq     *int64
			headers []byte
		)
		var base int
		err := row.Scan(&c.ID, &c.Destination, &c.Type, &key, &seq, &c.Payload, &headers,
			&c.IdempotencyKey, &c.attempts, &base, &c.CreatedAt, &c.since)
		if err != nil {
			return c, err
		}
		c.budgetUsed = c.attempts - base + 1
		if key != nil {
			c.OrderingKey = *key
		}
		if seq != nil {
			c.Seq = *seq
		}
		c.Attempt = c.attempts + 1
		if err := json.Unmarshal(headers, &c.Headers); err != nil {
			return c, fmt.Errorf("message %s: headers: %w", c.ID, err)
		}
		return c, nil
	})
}

type result struct {
	msg      claimed
	res      dispatch.Result
	at       time.Time
	duration time.Duration
}

// deliver sends a batch: ordering keys concurrently, each key's messages
// one at a time in sequence, stopping a key at its first message that is
// neither delivered nor dead. Messages not attempted get no result.
func (r *laneRunner) deliver(ctx context.Context, batch []claimed) []result {
	groups := map[string][]claimed{}
	var order []string
	for _, m := range batch {
		g := m.OrderingKey
		if g == "" {
			g = "\x00" + m.ID.String() // each unkeyed message alone
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], m)
	}
	var (
		mu      sync.Mutex
		results = make([]result, 0, len(batch))
		wg      sync.WaitGroup
	)
	for _, g := range order {
		wg.Add(1)
		go func(msgs []claimed) {
			defer wg.Done()
			for _, m := range msgs {
				res, ok := r.attempt(ctx, m)
				if !ok {
					return
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
				if o := res.res.Outcome; o != dispatch.Delivered && o != dispatch.Dead {
					return
				}
			}
		}(groups[g])
	}
	wg.Wait()
	return results
}

// attempt delivers one message; ok=false means it was not attempted (its
// destination is paused here) and stays as it is.
func (r *laneRunner) attempt(ctx context.Context, m claimed) (result, bool) {
	if _, paused := r.d.paused.Load(m.Destination); paused {
		return result{}, false
	}
	dest, known := r.d.cfg.Destinations[m.Destination]
	start := time.Now()
	var res dispatch.Result
	if known {
		res = dest.Deliver(ctx, m.Message)
	} else {
		res = dispatch.Result{Outcome: dispatch.Retry, Err: fmt.Errorf("destination %q is not configured in this dispatcher", m.Destination)}
	}
	out := result{msg: m, res: res, at: start, duration: time.Since(start)}
	if res.Outcome == dispatch.Pause {
		r.d.pauseDestination(m.Destination, res)
	}
	r.d.cfg.Metrics.observe(out)
	return out, true
}

func (d *Dispatcher) pauseDestination(name string, res dispatch.Result) {
	d.paused.Store(name, struct{}{})
	d.log.Warn("destination paused: it answered 410 Gone; resume it with 'outboxd outbox resume'", "destination", name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.pool.Exec(ctx, d.q.pause, name, clean(res.String(), 500)); err != nil {
		d.log.Error("could not record the pause; other dispatchers keep sending", "destination", name, "error", err)
	}
}

// record stores the results of one batch in one statement.
func (r *laneRunner) record(ctx context.Context, results []result) error {
	if len(results) == 0 {
		return nil
	}
	n := len(results)
	var (
		ids       = make([]uuid.UUID, n)
		statuses  = make([]string, n)
		outcomes  = make([]string, n)
		nextAt    = make([]time.Time, n)
		errs      = make([]string, n)
		codes     = make([]int32, n)
		attempted = make([]time.Time, n)
		durations = make([]float64, n)
		bodies    = make([]string, n)
	)
	now := time.Now()
	for i, res := range results {
		ids[i] = res.msg.ID
		statuses[i], nextAt[i] = r.nextState(res, now)
		outcomes[i] = string(res.res.Outcome)
		errs[i] = clean(res.res.Error(), 1000)
		codes[i] = int32(res.res.StatusCode)
		attempted[i] = res.at
		durations[i] = float64(res.duration.Microseconds()) / 1000
		bodies[i] = clean(string(res.res.Body), 4096)
	}
	_, err := r.d.pool.Exec(ctx, r.d.q.record, r.lane, r.d.cfg.ID,
		ids, statuses, outcomes, nextAt, errs, codes, attempted, durations, bodies)
	if err != nil {
		return err
	}
	r.d.cfg.Metrics.recorded(results, statuses)
	return nil
}

// nextState decides a message's status and next attempt time after a
// result.
func (r *laneRunner) nextState(res result, now time.Time) (string, time.Time) {
	switch res.res.Outcome {
	case dispatch.Delivered:
		return "delivered", now
	case dispatch.Dead:
		return "dead", now
	case dispatch.Pause:
		// Not the message's fault: it waits for the destination to resume.
		return "pending", now
	}
	policy := r.d.cfg.retryFor(res.msg.Destination)
	if policy.exhausted(res.msg.budgetUsed, res.msg.since, now) {
		return "dead", now
	}
	return "pending", now.Add(policy.Backoff(res.msg.budgetUsed, res.res.RetryAfter))
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
