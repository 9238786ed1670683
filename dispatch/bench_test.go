package dispatch_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/outboxd/outboxd/dispatch"
)

// The cost of one delivery over HTTP, client and server on this machine,
// against a bare http.Client POST of the same body with one header, the
// least a hand-written relay sends (docs/benchmarks.md, bench-dispatch:
// the drain's client side). Compare allocs/op and B/op, and ns/op within
// one run:
//
//	go test -run '^$' -bench 'Post' -benchmem -count 5 ./dispatch/
func benchServer(b *testing.B) *httptest.Server {
	b.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(s.Close)
	return s
}

var benchBody = bytes.Repeat([]byte("x"), 300)

const benchKey = "0193a4c2-7d1e-7000-8000-0123456789ab"

func BenchmarkPostDeliver(b *testing.B) {
	s := benchServer(b)
	d, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: s.URL, MaxConcurrency: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := d.Deliver(context.Background(), dispatch.Message{Payload: benchBody, IdempotencyKey: benchKey}); r.Outcome != dispatch.Delivered {
				b.Fatal(r)
			}
		}
	})
}

func BenchmarkPostBareClient(b *testing.B) {
	s := benchServer(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL, bytes.NewReader(benchBody))
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Idempotency-Key", benchKey)
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
