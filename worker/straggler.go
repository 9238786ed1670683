package worker

import (
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/pgid"
)

// stragglerAfter is how long a batch holds its lane before the keys still
// being sent are left to finish as a straggler; maxStragglers bounds the
// stragglers of a lane (at that many, a batch is waited for until one of
// them ends: waitBatch).
const (
	stragglerAfter = time.Second
	maxStragglers  = 4
)

// waitBatch waits for a batch's end and reports true, or reports false
// when it may become a straggler: it ran for stragglerAfter, and the
// runner is not stopping and holds fewer than maxStragglers.
func (r *laneRunner) waitBatch(ended chan struct{}) bool {
	t := time.NewTimer(stragglerAfter)
	defer t.Stop()
	for over := false; ; {
		// Below the most stragglers, one that ends is left to the
		// runner's idle after the batch, which the signal ends at once.
		var atMost chan struct{}
		if len(r.stragglers) >= maxStragglers {
			atMost = r.stragglerEnded
		}
		select {
		case <-ended:
			return true
		case <-t.C:
			over = true
		case <-atMost:
			// At the most, one that ends is recorded now, its key freed
			// (the next claim comes at once), and the batch may take its
			// place: it waited for this batch's end (a hanging request's
			// timeout), and the lane with it.
			freed, err := r.settleStragglers()
			if err != nil {
				r.settleRefused(err) // kept, and tried again after the batch
			}
			r.goAgain = r.goAgain || freed || err != nil
		}
		if over && len(r.stragglers) < maxStragglers {
			break
		}
	}
	if r.stopping() || !r.leaseValid() {
		<-ended
		return true
	}
	return false
}

// straggler is what is left of a batch that deliver stopped waiting for:
// its groups (an ordering key's messages, or one unkeyed message) still
// being sent, which claims leave out until each ends (freed), and its
// results from from on, recorded as they come.
type straggler struct {
	out    *batchResults
	groups [][]claimed
	freed  []bool // the group's end was settled (read by run's goroutine only)
	from   int
	unhook func()
}

// take returns the results since the last settling and the groups that
// ended since, and whether every group ended. Nothing moves until commit:
// results the database did not take are taken again, with the later ones,
// so that a key's results are never stored out of its order (a failed
// recording of one message, then its successor's stored, had the claim's
// head send the first again after the second: a review's).
func (s *straggler) take() (results []result, ended []int, over bool, upTo int) {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	results = slices.Clone(s.out.results[s.from:])
	over = true
	for i := range s.groups {
		switch {
		case !s.out.ended[i]:
			over = false
		case !s.freed[i]:
			ended = append(ended, i)
		}
	}
	return results, ended, over, len(s.out.results)
}

// commit marks what take returned as settled, and returns the keys of the
// groups it frees.
func (s *straggler) commit(ended []int, over bool, upTo int) (keys []string) {
	s.from = upTo
	for _, i := range ended {
		s.freed[i] = true
		if k := s.groups[i][0].OrderingKey; k != "" {
			keys = append(keys, k)
		}
	}
	if over {
		s.unhook()
	}
	return keys
}

// unsettle takes back the results the batch's own recording failed to
// store: the straggler records them with its own, every group held until
// then (some of those results are of keys it still sends).
func (s *straggler) unsettle() {
	s.from = 0
	clear(s.freed)
}

// running adds the keys and unkeyed ids of s's groups not yet freed.
func (s *straggler) running(keys []string, ids []pgtype.UUID) ([]string, []pgtype.UUID) {
	for i, g := range s.groups {
		switch {
		case s.freed[i]:
		case g[0].OrderingKey != "":
			keys = append(keys, g[0].OrderingKey)
		default:
			ids = append(ids, pgid.One(g[0].ID))
		}
	}
	return keys, ids
}

// settleStragglers records what the stragglers' groups did since the last
// settling, frees the keys of those that ended and drops the stragglers
// whose groups all did. A freed key is claimed again by name
// (walk.progressed): a walk while it was left out did not see it. Groups
// are freed only here, in run's goroutine, and only once their results
// are stored, so the claims never take a message whose result is not. On
// an error nothing is settled: it is tried again, with what comes later.
// It says whether it freed a key.
func (r *laneRunner) settleStragglers() (freed bool, err error) {
	results, took := r.takeStragglers()
	if len(results) > 0 {
		record := r.record
		if r.unsure {
			record = r.recordAgain
		}
		if err := record(results); err != nil {
			return false, err
		}
		r.unsure = false
		r.afterBatch(nil, results)
		r.noteRetries(results)
	}
	for _, k := range r.commitStragglers(took) {
		freed = true
		if !slices.Contains(r.walk.progressed, k) {
			r.walk.progressed = append(r.walk.progressed, k)
		}
	}
	if len(r.walk.progressed) > maxProgressed {
		r.walk.next = true
	}
	return freed, nil
}

// taken is what take returned of one straggler, for commit.
type taken struct {
	ended []int
	over  bool
	upTo  int
}

// takeStragglers takes every straggler's results since the last settling.
func (r *laneRunner) takeStragglers() ([]result, []taken) {
	var results []result
	took := make([]taken, len(r.stragglers))
	for i, s := range r.stragglers {
		res, ended, over, upTo := s.take()
		results = append(results, res...)
		took[i] = taken{ended, over, upTo}
	}
	return results, took
}

// commitStragglers settles what takeStragglers took, drops the stragglers
// that are over and returns the keys it frees.
func (r *laneRunner) commitStragglers(took []taken) (freed []string) {
	kept := r.stragglers[:0]
	for i, s := range r.stragglers {
		freed = append(freed, s.commit(took[i].ended, took[i].over, took[i].upTo)...)
		if !took[i].over {
			kept = append(kept, s)
		}
	}
	clear(r.stragglers[len(kept):])
	r.stragglers = kept
	return freed
}

// settleFailed handles a settling the database refused: the results stay
// with their stragglers (their keys still left out of the claims) and are
// tried again after the backoff, as a batch's recording is.
func (r *laneRunner) settleFailed(err error, backoff *time.Duration) {
	r.settleRefused(err)
	r.sleep(*backoff)
	*backoff = min(*backoff*2, 5*time.Second)
}

// settleRefused says that a settling failed, and why.
func (r *laneRunner) settleRefused(err error) {
	r.unsure = true
	if ok, held := r.d.logs.Allow("straggler results failed"); ok {
		r.d.log.Warn("results of requests that outlasted their batch not recorded (the database failed); tried again later",
			"destination", r.key.Destination, "lane", r.key.Lane, "error", err, "similar_lines_left_out", held)
	}
	r.d.health.report(opRecord, err)
	if isSchemaError(err) {
		r.d.schemaFailed(err)
	}
}

// finishStragglers, as the run ends (a stop, a hand-over, or the lease
// ran out), records each straggler as it ends: their attempts finish, or
// are cut off, as a batch's. One that never returns (a Destination that
// ignores its context) holds back only its own results; results the
// database refuses are tried again while a hand-over's lease holds, and
// otherwise given up as a batch's, left to the lane's next holder.
func (r *laneRunner) finishStragglers() {
	backoff := 100 * time.Millisecond
	for {
		if _, err := r.settleStragglers(); err != nil && r.mayRecordAgain() {
			r.settleRefused(err) // handing the lane over: tried again, as a batch's
			r.pause(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		} else if err != nil {
			results, took := r.takeStragglers()
			r.commitStragglers(took)
			r.recordFailed(results, err)
		}
		if len(r.stragglers) == 0 {
			return
		}
		<-r.stragglerEnded
	}
}

// excluded are the keys and ids the stragglers still send, for a claim.
func (r *laneRunner) excluded() (keys []string, ids []pgtype.UUID) {
	keys, ids = []string{}, []pgtype.UUID{} // never NULL: "<> ALL(NULL)" excludes everything
	for _, s := range r.stragglers {
		keys, ids = s.running(keys, ids)
	}
	return keys, ids
}
