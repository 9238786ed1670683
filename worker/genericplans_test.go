package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/worker"
)

// A dispatcher's claims and recordings run on their generic plans whatever
// the session would choose: here every connection of the pool asks for
// custom plans, which PostgreSQL's own choice can also settle on for good
// after the first five executions (a claim's plan cost more than running
// it: docs/benchmarks.md, "Plans made at every claim"). The session keeps
// its setting for the application's statements.
func TestClaimsAndRecordingsUseTheirGenericPlans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.pool = pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=10&plan_cache_mode=force_custom_plan")
	// One message per transaction, keyed and not: many claims and
	// recordings, more than five on some connection.
	b.enqueue(t, 60, 1, func(i int) string {
		if i%2 == 0 {
			return ""
		}
		return fmt.Sprintf("k%d", i%4)
	})
	d := b.start(t, b.config(t, nil))
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 60 {
		t.Fatalf("statuses %v, want 60 delivered", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var generic, custom int64
	for _, conn := range b.pool.AcquireAllIdle(ctx) {
		var mode string
		var g, c int64
		err := conn.QueryRow(ctx, `SELECT current_setting('plan_cache_mode'),
       (SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements WHERE statement = ANY ($1)),
       (SELECT coalesce(sum(custom_plans), 0) FROM pg_prepared_statements WHERE statement = ANY ($1))`,
			worker.HotStatements(d)).Scan(&mode, &g, &c)
		conn.Release()
		if err != nil {
			t.Fatal(err)
		}
		if mode != "force_custom_plan" {
			t.Errorf("a pooled connection's plan_cache_mode is %s after the dispatcher used it, want the session's force_custom_plan", mode)
		}
		generic, custom = generic+g, custom+c
	}
	if custom != 0 || generic == 0 {
		t.Fatalf("claims and recordings planned %d times for their values and ran their generic plans %d times; want never and some", custom, generic)
	}
	t.Logf("%d executions of claims and recordings on their generic plans", generic)
}
