package worker

import (
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
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
// the keys (and unkeyed messages' ids) still being sent, which claims
// leave out until it ends, and its results from from on.
type straggler struct {
	out    *batchResults
	from   int
	keys   []string
	ids    []pgtype.UUID
	ended  chan struct{}
	unhook func()
}

// isOver reports whether s ended.
func (s *straggler) isOver() bool {
	select {
	case <-s.ended:
		return true
	default:
		return false
	}
}

// results are the straggler's own results, once it ended.
func (s *straggler) results() []result {
	s.unhook()
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	return s.out.results[s.from:]
}

// settleStragglers records the stragglers that ended and drops them.
// Their keys are claimed again, by name (walk.progressed): a walk while
// they were left out did not see them. On an error it returns how many
// results the database did not take (their messages, pending, are sent
// again: recordFailed).
func (r *laneRunner) settleStragglers() (int, error) {
	var (
		results []result
		keys    []string
	)
	kept := r.stragglers[:0]
	for _, s := range r.stragglers {
		if !s.isOver() {
			kept = append(kept, s)
			continue
		}
		results = append(results, s.results()...)
		keys = append(keys, s.keys...)
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
		keys = append(keys, s.keys...)
		ids = append(ids, s.ids...)
	}
	return keys, ids
}
