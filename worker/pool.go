package worker

import "sync"

// deliveryPool runs the deliveries of one destination that bounds its own
// calls in flight (dispatch.Concurrent): at most limit goroutines, started
// when work comes and gone when the queue is empty, taking the groups in
// the order the lanes handed them in, a lane's whole batch at once.
//
// One goroutine per ordering key would only park on the destination's
// bound: 32 lanes of 200 keys made 6,400 goroutines in a drain, whose
// scheduling and stack scans cost a fifth of the process's CPU. And
// a bound per lane (16 each) had the waiting lanes take turns request by
// request, so every lane's batch ended at about the same time and the
// drain wrote 7% more WAL (fewer dead row versions pruned in time;
// docs/benchmarks.md): whole batches first come, first served, keep the
// order the parked goroutines had.
type deliveryPool struct {
	limit int

	mu     sync.Mutex
	queue  []delivery
	head   int // queue[head:] waits
	active int // goroutines running
}

// delivery is one ordering key's messages of a batch (one message when
// unkeyed) and the batch its results go to.
type delivery struct {
	r     *laneRunner
	msgs  []claimed
	batch *batchResults
}

// batchResults gathers a batch's results; done counts its deliveries.
type batchResults struct {
	mu      sync.Mutex
	results []result
	done    sync.WaitGroup
}

// submit queues groups' deliveries and returns at once; out.done is
// released once per group.
func (p *deliveryPool) submit(r *laneRunner, groups [][]claimed, out *batchResults) {
	out.done.Add(len(groups))
	p.mu.Lock()
	if p.head > 0 && p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	}
	for _, g := range groups {
		p.queue = append(p.queue, delivery{r: r, msgs: g, batch: out})
	}
	spawn := min(p.limit-p.active, len(p.queue)-p.head)
	p.active += spawn
	p.mu.Unlock()
	for range spawn {
		go p.work()
	}
}

func (p *deliveryPool) work() {
	for {
		p.mu.Lock()
		if p.head == len(p.queue) {
			p.active--
			p.mu.Unlock()
			return
		}
		job := p.queue[p.head]
		p.queue[p.head] = delivery{} // not kept reachable once taken
		p.head++
		if p.head > 1024 && 2*p.head > len(p.queue) {
			// A queue that never empties (a long drain) would keep
			// growing at its front: move what waits down.
			n := copy(p.queue, p.queue[p.head:])
			clear(p.queue[n:])
			p.queue, p.head = p.queue[:n], 0
		}
		p.mu.Unlock()
		job.r.deliverGroup(job.msgs, job.batch)
		job.batch.done.Done()
	}
}
