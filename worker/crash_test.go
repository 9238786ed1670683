package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// tailFirst numbers the messages of the tails enqueued just before the
// crashes, 100 a crash.
const tailFirst = 8_000_000

// PostgreSQL crashes three to six times (immediate shutdowns: the WAL not yet
// written is lost, the last moment's asynchronous commits with it) while
// producers enqueue keyed and unkeyed messages and the dispatcher drains.
// After recovery every message is delivered, and no key's message reaches
// the destination after its successor did: recordings of keyed results
// wait for their WAL flush, so one lost in a crash was never followed by
// its key's next message. Unkeyed messages whose recordings were lost are
// sent again, with the same idempotency key.
//
// Before each crash the producers pause, and once everything is recorded
// a transaction enqueues a tail: 3 messages on each of 4 new keys before
// the first and the last crash, 12 unkeyed ones before those between (1
// to 4). The crash comes once the tail is recorded, with little else
// committing: the
// WAL writer writes asynchronous commits every 10 s here
// (wal_writer_delay), heartbeats and lease renewals come every 10 s, and a
// claim takes one message of a key, so that a key's messages are recorded
// one transaction each. The unkeyed tail's recordings are lost (sent
// again); with keyed results recorded asynchronously too, so would the
// keys' be, and their first messages would reach the sink again after
// their third.
func TestPostgresCrashLosesNoMessageAndKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	cluster, b := clusterBundle(t)
	s := b.sink
	slowWALWriter(t, b)
	b.start(t, b.config(t, outageConfig))
	producers := startOutageProducers(t, b)
	// crashAfter runs producers for 200 deliveries, pauses them, enqueues
	// a tail of one kind in one transaction (a later synchronous commit, an
	// enqueue or a keyed recording, would flush the other kind's
	// recordings), and crashes once it is recorded. It returns how many of
	// the tail's messages reached the sink twice once they were delivered
	// again.
	round := 0
	crashAfter := func(keyedTail bool) int {
		t.Helper()
		round++
		at := len(s.Requests())
		waitFor(t, 30*time.Second, fmt.Sprintf("deliveries before crash %d", round), func() bool { return len(s.Requests()) > at+200 })
		var tail []outbox.Message
		first := tailFirst + round*100
		for n := range 12 {
			if keyedTail {
				key := fmt.Sprintf("tail%d-%d", round, n%4)
				tail = append(tail, outbox.Message{Destination: "sink", OrderingKey: key,
					Payload: fmt.Appendf(nil, `{"i":%d,"key":%q}`, first+n, key)})
			} else {
				tail = append(tail, outbox.Message{Destination: "sink", Payload: fmt.Appendf(nil, `{"i":%d,"key":""}`, first+n)})
			}
		}
		producers.pauseThenTail(t, tail)
		cluster.Crash()
		time.Sleep(300 * time.Millisecond)
		cluster.Start(t)
		waitFor(t, 60*time.Second, "the tail recorded again after the crash", func() bool { return b.counts(t)["pending"] == 0 })
		producers.resume()
		sent := map[int]int{}
		again := 0
		for _, r := range s.Requests() {
			if p := decode(t, r); p.I >= first && p.I < first+12 {
				if sent[p.I]++; sent[p.I] == 2 {
					again++
				}
			}
		}
		return again
	}
	crashAfter(true)
	// A heartbeat, a lease renewal or the listener's probe committing
	// between the unkeyed tail's recordings and the crash flushes them:
	// rare, so tried up to 4 times.
	tailAgain := 0
	for try := 0; try < 4 && tailAgain == 0; try++ {
		tailAgain = crashAfter(false)
	}
	crashAfter(true)
	at := len(s.Requests())
	waitFor(t, 30*time.Second, "deliveries after the last crash", func() bool { return len(s.Requests()) > at+200 })
	producers.end()

	rows := b.checkAllDelivered(t)
	reqs := s.Requests()
	repeats := checkKeyOrder(t, reqs)
	if tailAgain == 0 {
		t.Fatal("no unkeyed message recorded just before a crash was sent again (4 crashes): none lost an asynchronous recording, and the test showed nothing")
	}
	t.Logf("%d messages, %d requests; sent again after the crashes: %d unkeyed, %d keyed", rows, len(reqs), repeats[false], repeats[true])
}
