package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/worker"
)

// A destination's rate is the destination's, not each process's: with two
// dispatchers serving it, each sends at most half (a trial's two
// processes sent 3.86 requests a second to a destination limited to 2),
// and the one left takes the whole rate again once the other stops.
func TestRateIsSharedAmongDispatchers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := func(id string) (*worker.Dispatcher, *dispatch.HTTP) {
		h, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: b.sink.URL(), Rate: 10, Burst: 4})
		if err != nil {
			t.Fatal(err)
		}
		return b.start(t, b.config(t, func(c *worker.Config) {
			c.ID = id
			c.Destinations = map[string]dispatch.Destination{"sink": h}
		})), h
	}
	rates := func(hs ...*dispatch.HTTP) string {
		s := ""
		for _, h := range hs {
			s += fmt.Sprintf(" %g", h.Rate())
		}
		return s
	}
	_, a := start("share-a")
	waitFor(t, 10*time.Second, "the first dispatcher to take the whole rate", func() bool { return rates(a) == " 10" })
	second, c := start("share-b")
	waitFor(t, 10*time.Second, "each of two dispatchers to take half the rate", func() bool { return rates(a, c) == " 5 5" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the dispatcher left to take the whole rate again", func() bool { return rates(a) == " 10" })
}
