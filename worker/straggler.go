package worker

import (
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/pgid"
)

// stragglerAfter is how long a batch holds its lane before the keys still
// being sent are left to finish as a straggler; maxStragglers bounds the
// stragglers of a lane (beyond, a batch is waited for whole, as before).
const (
	stragglerAfter = time.Second
	maxStragglers  = 4
)

// waitBatch waits for a batch's end and reports true, or reports false
// when it may become a straggler: it ran for stragglerAfter, and the
// runner is not stopping and holds few enough of them.
func (r *laneRunner) waitBatch(ended chan struct{}) bool {
	if len(r.stragglers) >= maxStragglers {
		<-ended
		return true
	}
	t := time.NewTimer(stragglerAfter)
	defer t.Stop()
	select {
	case <-ended:
		return true
	case <-t.C:
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
	ended  chan struct{} // every group ended
	unhook func()
}

// take returns the results since the last take and the keys of the
// groups that ended since, and whether every group ended.
func (s *straggler) take() (results []result, keys []string, over bool) {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	results = slices.Clone(s.out.results[s.from:])
	s.from = len(s.out.results)
	over = true
	for i, g := range s.groups {
		switch {
		case !s.out.ended[i]:
			over = false
		case !s.freed[i]:
			s.freed[i] = true
			if g[0].OrderingKey != "" {
				keys = append(keys, g[0].OrderingKey)
			}
		}
	}
	if over {
		s.unhook()
	}
	return results, keys, over
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
// are freed only here, in run's goroutine, so the claim that follows sees
// their results recorded, or, when the recording failed, sends their
// messages again after the backoff, as a batch's (recordFailed: it gets
// how many results the database did not take, and the error).
func (r *laneRunner) settleStragglers() (int, error) {
	var (
		results []result
		keys    []string
	)
	kept := r.stragglers[:0]
	for _, s := range r.stragglers {
		res, ks, over := s.take()
		results, keys = append(results, res...), append(keys, ks...)
		if !over {
			kept = append(kept, s)
		}
	}
	clear(r.stragglers[len(kept):])
	r.stragglers = kept
	if len(results) > 0 {
		if err := r.record(results); err != nil {
			return len(results), err
		}
		r.afterBatch(nil, results)
		r.noteRetries(results)
	}
	for _, k := range keys {
		if !slices.Contains(r.walk.progressed, k) {
			r.walk.progressed = append(r.walk.progressed, k)
		}
	}
	if len(r.walk.progressed) > maxProgressed {
		r.walk.next = true
	}
	return 0, nil
}

// finishStragglers, as the run ends, records each straggler as it ends:
// their attempts finish, or are cut off, as a batch's. One that never
// returns (a Destination that ignores its context) holds back only its
// own results.
func (r *laneRunner) finishStragglers() {
	for {
		if n, err := r.settleStragglers(); err != nil {
			r.unrecordedAtStop(n, r.d.unrecorded.Add(int64(n)), err)
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
