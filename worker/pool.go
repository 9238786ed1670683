package worker

import "sync"

// deliveryPool runs the deliveries of one destination that bounds its own
// calls in flight (dispatch.Concurrent): at most limit goroutines, started
// when work comes and gone when the queue is empty. A job is one message
// of an ordering key (or an unkeyed one); after it, the key's next message
// goes to the back of the queue, as its goroutine went back into the
// bound's queue before: batches go out in the order the lanes handed them
// in, and a key with many messages does not hold a goroutine while other
// lanes wait.
//
// One goroutine per ordering key would only park on the destination's
// bound: 32 lanes of 200 keys made 6,400 goroutines in a drain, whose
// scheduling and stack scans cost a fifth of the process's CPU. And a
// bound per lane (16 each) had the waiting lanes take turns request by
// request, so every lane's batch ended at about the same time and the
// drain wrote 3-8% more WAL (fewer dead row versions pruned in time;
// docs/benchmarks.md).
type deliveryPool struct {
	limit int

	mu     sync.Mutex
	queue  []delivery
	head   int // queue[head:] waits
	active int // goroutines running
}

// delivery is what is left to send of one ordering key's messages of a
// batch (one message when unkeyed), and the batch its results go to.
type delivery struct {
	r     *laneRunner
	msgs  []claimed
	batch *batchResults
	group int // its place in the batch's groups
}

// batchResults gathers a batch's results; done counts its groups not yet
// ended, and ended says which have (guarded by mu, as results). dropped is
// guarded by the pool's mu.
type batchResults struct {
	mu      sync.Mutex
	results []result
	ended   []bool
	notify  chan struct{} // once the batch is a straggler: signalled at each group's end
	done    sync.WaitGroup
	dropped bool
}

func newBatchResults(groups int) *batchResults {
	return &batchResults{results: make([]result, 0, groups), ended: make([]bool, groups)}
}

// end counts group ended: all its results are in.
func (b *batchResults) end(group int) {
	b.mu.Lock()
	b.ended[group] = true
	notify := b.notify
	b.mu.Unlock()
	if notify != nil {
		select {
		case notify <- struct{}{}:
		default:
		}
	}
	b.done.Done()
}

// submit queues a batch's groups and returns at once; out.done is
// released once per group, when it ends or is dropped.
func (p *deliveryPool) submit(r *laneRunner, groups [][]claimed, out *batchResults) {
	out.done.Add(len(groups))
	p.mu.Lock()
	for i, g := range groups {
		p.queue = append(p.queue, delivery{r: r, msgs: g, batch: out, group: i})
	}
	n := p.spawnLocked()
	p.mu.Unlock()
	p.start(n)
}

// spawnLocked counts the goroutines to start for what waits.
func (p *deliveryPool) spawnLocked() int {
	n := min(p.limit-p.active, len(p.queue)-p.head)
	p.active += n
	return n
}

func (p *deliveryPool) start(n int) {
	for range n {
		go p.work()
	}
}

func (p *deliveryPool) work() {
	var job delivery
	sending := false
	defer func() {
		if !sending {
			return // left through take, which counted it
		}
		// A Destination ended the goroutine (runtime.Goexit, as a test's
		// t.Fatal does; a panic goes on to end the process): the key's
		// message stays pending, and another goroutine takes this one's
		// place, or the batch and the pool would wait for it forever.
		p.mu.Lock()
		p.active--
		n := p.spawnLocked()
		p.mu.Unlock()
		p.start(n)
		job.batch.end(job.group)
	}()
	for {
		var ok bool
		if job, ok = p.take(); !ok {
			return
		}
		sending = true
		job.msgs = job.r.deliverNext(job.msgs, job.batch)
		sending = false
		p.next(job)
	}
}

// take returns the job at the front, or counts this goroutine gone when
// none waits.
func (p *deliveryPool) take() (delivery, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.queue) {
		p.active--
		p.queue, p.head = p.queue[:0], 0
		if cap(p.queue) > 4096 {
			p.queue = nil // a drain's queue is not kept for the quiet after it
		}
		return delivery{}, false
	}
	job := p.queue[p.head]
	p.queue[p.head] = delivery{} // not kept reachable once taken
	p.head++
	if p.head > 1024 && 2*p.head > len(p.queue) {
		// A queue that never empties (a long drain) would keep growing
		// at its front: move what waits down.
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return job, true
}

// next queues the rest of job's key at the back, or ends the group when
// nothing is left to send or its batch was dropped.
func (p *deliveryPool) next(job delivery) {
	p.mu.Lock()
	if len(job.msgs) > 0 && !job.batch.dropped {
		p.queue = append(p.queue, job)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	job.batch.end(job.group)
}

// drop ends the groups of out that wait in the queue, unsent: its lane's
// lease is gone (or Stop gave up), so they would not be sent anyway, and
// the runner must not wait for the pool to reach them.
func (p *deliveryPool) drop(out *batchResults) {
	p.mu.Lock()
	out.dropped = true
	kept := p.head
	for _, job := range p.queue[p.head:] {
		if job.batch == out {
			out.end(job.group) // out.mu inside the pool's: never the other way
			continue
		}
		p.queue[kept] = job
		kept++
	}
	clear(p.queue[kept:])
	p.queue = p.queue[:kept]
	p.mu.Unlock()
}
