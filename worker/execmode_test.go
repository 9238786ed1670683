package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// A dispatcher on a pool in the simple protocol or exec mode (PgBouncer's
// usual settings), where pgx must type every argument itself, claims,
// delivers and records as in the default mode.
func TestDispatcherInExecAndSimpleProtocolModes(t *testing.T) {
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			b := setup(t)
			b.pool = pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=10&default_query_exec_mode="+mode)
			b.enqueue(t, 40, 10, func(i int) string {
				if i%2 == 0 {
					return ""
				}
				return fmt.Sprintf("k%d", i%3)
			})
			b.start(t, b.config(t, nil))
			if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 40 {
				t.Fatalf("statuses %v, want 40 delivered", c)
			}
			b.checkKeys(t)
		})
	}
}
