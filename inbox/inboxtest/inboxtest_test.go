package inboxtest_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/outboxd/outboxd/inbox/inboxtest"
)

// fakeT records failures instead of stopping the test, to check that the
// helpers catch non-idempotent handlers.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = format
	panic(f)
}

func run(f *fakeT, fn func()) {
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
	}()
	fn()
}

type counter struct {
	mu   sync.Mutex
	seen map[string]bool
	n    int
}

func (c *counter) handler(dedupe bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		id := r.Header.Get("Webhook-Id")
		if !dedupe || !c.seen[id] {
			c.n++
		}
		c.seen[id] = true
	})
}

func req() *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "/webhooks/x", strings.NewReader("{}"))
	r.Header.Set("Webhook-Id", "evt_1")
	return r
}

func TestHelpersPassIdempotentAndCatchDuplicatingHandlers(t *testing.T) {
	for _, dedupe := range []bool{true, false} {
		c := &counter{seen: map[string]bool{}}
		snap := func(testing.TB) any { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
		f := &fakeT{TB: t}
		run(f, func() { inboxtest.DeliverTwice(f, c.handler(dedupe), req, snap) })
		if f.failed == dedupe {
			t.Fatalf("DeliverTwice, dedupe=%v: failed=%v", dedupe, f.failed)
		}
		c = &counter{seen: map[string]bool{}}
		f = &fakeT{TB: t}
		var state any
		run(f, func() { state = inboxtest.DeliverConcurrently(f, c.handler(dedupe), req, 20, snap) })
		if f.failed == dedupe {
			t.Fatalf("DeliverConcurrently, dedupe=%v: failed=%v", dedupe, f.failed)
		}
		if dedupe && state != 1 {
			t.Fatalf("state %v", state)
		}
	}
	failing := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	f := &fakeT{TB: t}
	run(f, func() { inboxtest.DeliverTwice(f, failing, req, func(testing.TB) any { return 0 }) })
	if !f.failed {
		t.Fatal("a 503 passed")
	}
}
