// Package inboxtest helps users test that their webhook handlers are
// idempotent under at-least-once delivery: it delivers an event through the
// real handler more than once, and concurrently, and compares the state
// after one delivery with the state after all of them.
//
// DeliverTwice and DeliverConcurrently test the receiver's dedupe: the
// second delivery never reaches the handler. Replay and
// Rollback.DeliverAfterRollback run the handler itself twice for one event,
// as a replay after the dedupe window or a redelivery after a rollback
// does, so a handler with an effect outside its transaction fails them.
//
//	inboxtest.DeliverTwice(t, receiver, func() *http.Request { return signedDealWon(t) }, func(t testing.TB) any {
//		return countRows(t, "deals", "tasks", "notes", "outboxd.outbox_messages")
//	})
package inboxtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
)

// Request builds one delivery of the event under test. It is called once
// per delivery, since a request body can be read only once.
type Request func() *http.Request

// Snapshot returns the state that the event may change (row counts, the
// rows themselves, what a fake downstream received), comparable with
// reflect.DeepEqual.
type Snapshot func(t testing.TB) any

// Reply is one delivery's answer.
type Reply struct {
	Code int    // the HTTP status
	Body string // the response body
}

func deliver(h http.Handler, req Request) Reply {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req())
	return Reply{Code: w.Code, Body: w.Body.String()}
}

// DeliverTwice delivers the event twice in a row and fails t unless both
// answers are 2xx and the state after the second equals the state after the
// first. It returns the state after the first delivery.
func DeliverTwice(t testing.TB, h http.Handler, req Request, snap Snapshot) any {
	t.Helper()
	first := deliver(h, req)
	afterOne := snap(t)
	second := deliver(h, req)
	afterTwo := snap(t)
	if !is2xx(first.Code) || !is2xx(second.Code) {
		t.Fatalf("inboxtest: answers %d (%s) then %d (%s); both deliveries must get 2xx", first.Code, first.Body, second.Code, second.Body)
	}
	if !reflect.DeepEqual(afterOne, afterTwo) {
		t.Fatalf("inboxtest: the second delivery changed the state:\nafter one: %s\nafter two: %s", show(afterOne), show(afterTwo))
	}
	return afterOne
}

// DeliverConcurrently delivers the event n times at once, then once more,
// and fails t unless every answer is 2xx and the last delivery changed
// nothing. It returns the state after the concurrent deliveries, for the
// caller to check that it holds one event's effects (one contact, one
// task...).
func DeliverConcurrently(t testing.TB, h http.Handler, req Request, n int, snap Snapshot) any {
	t.Helper()
	replies := make([]Reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = deliver(h, req)
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range replies {
		if !is2xx(r.Code) {
			t.Fatalf("inboxtest: concurrent delivery %d of %d answered %d (%s)", i+1, n, r.Code, r.Body)
		}
	}
	after := snap(t)
	if r := deliver(h, req); !is2xx(r.Code) {
		t.Fatalf("inboxtest: delivery after the concurrent ones answered %d (%s)", r.Code, r.Body)
	}
	if again := snap(t); !reflect.DeepEqual(after, again) {
		t.Fatalf("inboxtest: a delivery after %d concurrent ones changed the state:\nbefore: %s\nafter:  %s", n, show(after), show(again))
	}
	return after
}

func is2xx(code int) bool { return code >= 200 && code < 300 }

func show(v any) string { return fmt.Sprintf("%+v", v) }
