package worker

import (
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

// settleStragglers records the stragglers that ended, and drops them:
// their keys are claimed again. With final (the run ends), it waits for
// every one first: their attempts finish, or are cut off, as a batch's.
func (r *laneRunner) settleStragglers(final bool) {
	var results []result
	kept := r.stragglers[:0]
	for _, s := range r.stragglers {
		if final {
			<-s.ended
		}
		if !s.isOver() {
			kept = append(kept, s)
			continue
		}
		results = append(results, s.results()...)
	}
	clear(r.stragglers[len(kept):])
	r.stragglers = kept
	if len(results) == 0 {
		return
	}
	if err := r.record(results); err != nil {
		total := r.d.unrecorded.Add(int64(len(results)))
		if final || r.stopping() {
			r.unrecordedAtStop(len(results), total, err)
			return
		}
		if ok, held := r.d.logs.Allow("results failed"); ok {
			r.d.log.Warn("results not recorded (the database failed); the messages are sent again, with the same idempotency keys",
				"destination", r.key.Destination, "lane", r.key.Lane, "not_recorded", len(results), "not_recorded_in_all", total,
				"error", err, "similar_lines_left_out", held)
		}
		r.d.health.report("recording results", err)
		r.walk.next = true // their keys are due again: the walk finds them
		return
	}
	r.afterBatch(nil, results)
	r.noteRetries(results)
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
