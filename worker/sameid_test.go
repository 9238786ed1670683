package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/worker"
)

// A second live process under an id in use is told so, once it listens;
// the first is not (it holds the id), and a restart under the same id
// after the first stopped is not either.
func TestASecondProcessWithTheSameIDIsTold(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const warning = "another live process runs with this dispatcher id"
	start := func(logs *syncbuf.Buffer) *worker.Dispatcher {
		return b.start(t, b.config(t, func(c *worker.Config) {
			c.ID = "same-id"
			c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}))
	}
	var first, second, third syncbuf.Buffer
	d1 := start(&first)
	waitFor(t, 10*time.Second, "the first to listen", func() bool { return d1.Ready() })
	d2 := start(&second)
	waitFor(t, 10*time.Second, "the second to be told", func() bool { return strings.Contains(second.String(), warning) })
	if !strings.Contains(second.String(), "holder=\"pid ") {
		t.Fatalf("the warning does not name the session holding the id:\n%s", second.String())
	}
	if strings.Contains(first.String(), warning) {
		t.Fatalf("the first process was told:\n%s", first.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range []*worker.Dispatcher{d1, d2} {
		if err := d.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	d3 := start(&third)
	waitFor(t, 10*time.Second, "the restart to listen", func() bool { return d3.Ready() })
	if strings.Contains(third.String(), warning) {
		t.Fatalf("a restart under the same id was told:\n%s", third.String())
	}
}
