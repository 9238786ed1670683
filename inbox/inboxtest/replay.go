package inboxtest

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
)

// DeliverTwice and DeliverConcurrently check the receiver's dedupe: the
// second delivery never reaches the handler. The helpers below make the
// handler itself run twice for one event, as happens in production when an
// event is replayed after the dedupe window, or redelivered after a
// transaction that ran the handler rolled back. A handler whose effects
// all live in the transaction, and whose writes are compare-and-swaps,
// passes; one that calls an API directly, or inserts without a business
// key, fails.

// Forget returns a function that deletes the event's inbox record, as the
// window's expiry would, for Replay.
func Forget(db inbox.DB, in *inbox.Inbox, source, id string) func(testing.TB) {
	return func(t testing.TB) {
		t.Helper()
		ok, err := in.Forget(context.Background(), db, source, id)
		if err != nil || !ok {
			t.Fatalf("inboxtest: forget %s/%s: found=%v, %v", source, id, ok, err)
		}
	}
}

// Replay delivers the event, forgets it (forget, usually Forget), and
// delivers it again, so the handler runs a second time for the same event.
// It fails t unless both answers are 2xx and the state after the second
// run equals the state after the first. It returns the state after the
// first.
func Replay(t testing.TB, h http.Handler, req Request, forget func(testing.TB), snap Snapshot) any {
	t.Helper()
	first := deliver(h, req)
	afterOne := snap(t)
	forget(t)
	second := deliver(h, req)
	afterTwo := snap(t)
	if !is2xx(first.Code) || !is2xx(second.Code) {
		t.Fatalf("inboxtest: answers %d (%s) then %d (%s); both runs must get 2xx", first.Code, first.Body, second.Code, second.Body)
	}
	if !reflect.DeepEqual(afterOne, afterTwo) {
		t.Fatalf("inboxtest: the handler's second run for one event changed the state (replay after the window):\nafter one: %s\nafter two: %s",
			show(afterOne), show(afterTwo))
	}
	return afterOne
}

// Rollback makes one run of a handler fail after the handler returned, so
// that its transaction rolls back as a failed commit would. Wrap the
// source's handler with it when building the receiver under test.
type Rollback struct{ armed atomic.Bool }

// ErrRolledBack is what a wrapped handler returns when a rollback was armed.
var ErrRolledBack = errors.New("inboxtest: rolled back after the handler ran")

// Wrap returns h, failing once after it succeeded whenever a rollback is
// armed.
func (rb *Rollback) Wrap(h inbox.HandlerFunc) inbox.HandlerFunc {
	return func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if err := h(ctx, tx, d); err != nil {
			return err
		}
		if rb.armed.CompareAndSwap(true, false) {
			return inbox.Transient(ErrRolledBack)
		}
		return nil
	}
}

// DeliverAfterRollback delivers the event once with its transaction rolled
// back after the handler ran (the sender is told to retry), then twice
// normally. It fails t unless the rolled-back run left the state exactly as
// before, and the last delivery changed nothing. h must be built with
// handlers wrapped by rb. It returns the final state.
func (rb *Rollback) DeliverAfterRollback(t testing.TB, h http.Handler, req Request, snap Snapshot) any {
	t.Helper()
	before := snap(t)
	rb.armed.Store(true)
	failed := deliver(h, req)
	if rb.armed.Swap(false) {
		t.Fatalf("inboxtest: the handler did not run (answer %d: %s); is it wrapped with Rollback.Wrap?", failed.Code, failed.Body)
	}
	afterRollback := snap(t)
	if is2xx(failed.Code) {
		t.Fatalf("inboxtest: a rolled-back run answered %d (%s)", failed.Code, failed.Body)
	}
	if !reflect.DeepEqual(before, afterRollback) {
		t.Fatalf("inboxtest: a run whose transaction rolled back changed the state (an effect outside the transaction):\nbefore: %s\nafter:  %s",
			show(before), show(afterRollback))
	}
	return DeliverTwice(t, h, req, snap)
}
