package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
)

// The primary crashes and its synchronous standby is promoted, while
// producers enqueue keyed and unkeyed messages through a URL naming both
// servers. Every recording waited for the standby (unkeyed ones too: the
// server names a synchronous standby), so the failover re-sends nothing
// that was recorded: after it, every message is delivered, none twice,
// and no key's message after its successor.
//
// Before the crash the producers pause, everything is recorded, and one
// transaction enqueues a tail of 12 unkeyed messages; the crash comes once
// the tail is recorded. The primary's WAL writer writes asynchronous
// commits every 10 s here (wal_writer_delay), and the standby receives only
// what was written: unkeyed recordings committed asynchronously, as
// without a synchronous standby, would be lost with the primary and sent
// again.
func TestFailoverToASynchronousStandbyResendsNothing(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	standby := cluster.AddSynchronousStandby(t)
	url := cluster.URL(t) // created after the standby's base backup: replicated
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	b := bundle{pool: pgtest.Connect(t, standby.FailoverURL(t, url)+"&pool_max_conns=10"), outbox: ob, sink: s}
	slowWALWriter(t, b)
	b.start(t, b.config(t, outageConfig))
	producers := startOutageProducers(t, b)
	waitFor(t, 30*time.Second, "deliveries before the failover", func() bool { return len(s.Requests()) > 200 })
	var tail []outbox.Message
	for n := range 12 {
		tail = append(tail, outbox.Message{Destination: "sink", Payload: fmt.Appendf(nil, `{"i":%d,"key":""}`, tailFirst+n)})
	}
	producers.pauseThenTail(t, tail)
	cluster.Crash()
	standby.Promote(t)
	producers.resume()
	at := len(s.Requests())
	waitFor(t, 60*time.Second, "deliveries after the failover", func() bool { return len(s.Requests()) > at+200 })
	producers.end()

	rows := b.checkAllDelivered(t)
	reqs := s.Requests()
	if repeats := checkKeyOrder(t, reqs); repeats[false]+repeats[true] != 0 {
		t.Fatalf("sent again after the failover: %d unkeyed, %d keyed; want none (every recording waited for the standby)", repeats[false], repeats[true])
	}
	t.Logf("%d messages, %d requests, none sent twice", rows, len(reqs))
}
