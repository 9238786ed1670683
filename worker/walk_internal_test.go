package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// The bound README and docs/design.md give for a commit whose wake-up is
// lost: SweepInterval, or, for a walk of 5 ms or more, 320 times the
// lane's walk when that is longer (a tenth of a core for a destination's
// 32 lanes), at most 30 s.
func TestWalkGap(t *testing.T) {
	if walkPace != 320 || maxWalkGap != 30*time.Second || walkFree != 5*time.Millisecond {
		t.Fatalf("walkPace %d, maxWalkGap %s, walkFree %s; the docs say 320, 30s and 5ms", walkPace, maxWalkGap, walkFree)
	}
	for _, c := range []struct {
		sweep, took, want time.Duration
	}{
		{time.Second, time.Millisecond, time.Second},                           // a few keys: every sweep
		{time.Second, 37 * time.Millisecond, 11840 * time.Millisecond},         // 3,100 keys in the lane
		{100 * time.Millisecond, 4 * time.Millisecond, 100 * time.Millisecond}, // under 5 ms: not paced
		{100 * time.Millisecond, 5 * time.Millisecond, 1600 * time.Millisecond},
		{time.Second, 0, time.Second},
		{time.Second, 370 * time.Millisecond, 30 * time.Second}, // 31,000 keys: capped
	} {
		if got := walkGap(c.sweep, walkPace, walkFree, c.took); got != c.want {
			t.Errorf("walkGap(%s, %d, %s) = %s, want %s", c.sweep, walkPace, c.took, got, c.want)
		}
	}
}

// A destination is down, for its wake-ups, once 32 attempts in a row have
// failed and none was delivered or refused (Dead) for 30 s (README
// guarantee 2 and docs/design.md give the numbers), and only a lane whose
// walk takes 5 ms or more stops walking on wake-ups. A delivery or a
// refusal (Dead) resets the count, a dead letter of the retry policy does
// not; an abandoned attempt and a pause count neither
// way.
func TestWakeUpsArePacedForADownDestinationsSlowWalks(t *testing.T) {
	if downAfter != 32 || downQuiet != 30*time.Second {
		t.Fatalf("downAfter %d, downQuiet %s; the docs say 32 and 30s", downAfter, downQuiet)
	}
	d := &Dispatcher{walkFree: walkFree, downQuiet: downQuiet, epoch: time.Now().Add(-time.Hour),
		failedInARow: map[string]*atomic.Int64{"x": new(atomic.Int64)}, lastAnswered: map[string]*atomic.Int64{"x": new(atomic.Int64)}}
	r := &laneRunner{d: d, key: Lane{Destination: "x"}}
	fail := func(n int, how func(*result)) {
		var rs []result
		for range n {
			res := result{status: "pending", res: dispatch.Result{Outcome: dispatch.Retry}}
			if how != nil {
				how(&res)
			}
			rs = append(rs, res)
		}
		r.afterBatch(nil, rs)
	}
	paced := func(took time.Duration) bool { r.walk.took.Store(int64(took)); return r.wakeUpsPaced() }
	fail(31, nil)
	fail(5, func(res *result) { res.abandoned = true })
	fail(5, func(res *result) { res.res.Outcome = dispatch.Pause })
	fail(5, func(res *result) { res.status = "" }) // not stored: the lease was gone
	if paced(time.Second) {
		t.Fatal("paced after 31 failures")
	}
	fail(1, nil)
	if !paced(5*time.Millisecond) || paced(4*time.Millisecond) {
		t.Fatalf("after 32 failures: paced %v with a 5 ms walk, %v with 4 ms; want true, false", paced(5*time.Millisecond), paced(4*time.Millisecond))
	}
	// A dead letter of the retry policy is a failure like the others.
	fail(1, func(res *result) { res.status = "dead" })
	if got := d.failedInARow["x"].Load(); got != 33 {
		t.Fatalf("a Retry dead-lettered by the policy: count %d, want 33", got)
	}
	for _, status := range []string{"delivered", "dead"} {
		fail(40, nil)
		answer := result{status: status, res: dispatch.Result{Outcome: dispatch.Delivered}}
		if status == "dead" {
			answer.res.Outcome = dispatch.Dead // the destination refused it (a 4xx)
		}
		r.afterBatch(nil, []result{{status: "pending", res: dispatch.Result{Outcome: dispatch.Retry}}, answer})
		if paced(time.Second) || d.failedInARow["x"].Load() != 0 {
			t.Fatalf("a batch with a message %s left the count at %d", status, d.failedInARow["x"].Load())
		}
	}
	// Failing again: down only 30 s after the last delivery; at once if
	// this dispatcher never saw one (it started during an outage).
	fail(40, nil)
	d.epoch, d.lastAnswered["x"] = time.Now(), new(atomic.Int64)
	if !paced(time.Second) {
		t.Error("40 failures, never a delivery, started just now: not paced")
	}
	d.epoch = time.Now().Add(-time.Hour)
	for _, c := range []struct {
		ago  time.Duration
		down bool
	}{{0, false}, {29 * time.Second, false}, {30 * time.Second, true}} {
		d.lastAnswered["x"].Store(int64(d.mono() - c.ago))
		if got := paced(time.Second); got != c.down {
			t.Errorf("40 failures, the last delivery %s ago: paced %v, want %v", c.ago, got, c.down)
		}
	}
}

// A runner keeps the due time of each retry it recorded until it falls
// due, even when it never idles (each batch delivers something or is
// full): at most one per message retrying, here one, after 1,000
// batches each recording a retry 1 µs away. Each claim forgets those due
// when it began (run's order: the claim, then the batch's retries noted).
func TestRetryTimesAreForgottenOnceDue(t *testing.T) {
	r := &laneRunner{d: &Dispatcher{epoch: time.Now()}}
	for range 1000 {
		r.forgetDue(r.d.mono())
		r.noteRetries([]result{{status: "pending", retryIn: time.Microsecond}})
		time.Sleep(2 * time.Microsecond) // the last one falls due
	}
	if n := len(r.retries); n > 1 {
		t.Fatalf("%d retry times kept after 1,000 batches of one retry each, all but the last due; want at most 1", n)
	}
}

// A claim without a walk reads the due retries from their index and the
// heads of the keys it is given, not the heads of every key: here the
// lane of backlogLane, with the 37 waiting heads retrying (an hour away),
// the first due key's head a retry due now, the second's never tried (a
// key the last batch delivered a message of: named in $7), the third's
// never tried either and not named, which only a walk finds (its second
// message, tried, is not its head and is not taken either). A retry head
// is taken alone (the messages behind a head that keeps failing would
// only be carried and left), a head never tried with up to per_key_batch
// behind it: by this claim and by a walk.
func TestClaimRetriesReadsOnlyDueRetries(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	lane, due := backlogLane(t, pool)
	ctx := context.Background()
	for _, q := range []string{
		`UPDATE outboxd.outbox_messages SET attempts = 3 WHERE seq = 1 AND next_attempt_at > now() AND destination = 'sink'`,
		`UPDATE outboxd.outbox_messages SET attempts = 2 WHERE seq = 1 AND ordering_key = '` + due[0] + `'`,
		// A tried message behind its key's head (a requeue can make one).
		`UPDATE outboxd.outbox_messages SET attempts = 1 WHERE seq = 2 AND ordering_key = '` + due[2] + `'`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	claim := dbschema.Render(claimRetriesSQL, "outboxd")
	const perKey, batch = 10, 200
	args := []any{"sink", lane, "me", int64(1), perKey, batch, int64(DefaultBatchBytes), []string{due[1]}}

	// Two heads and their 11 messages, a probe for the retry head's
	// predecessors, and the first retry not due, which ends the range.
	plan := explain(t, pool, "ANALYZE, ", claim, args...)
	if read := onlyIndexes(t, "the claim without a walk", plan, false); read > 2*(2+2*perKey)+4 {
		t.Fatalf("the claim without a walk read %.0f rows of outbox_messages for 2 due keys of 40 and %d messages", read, 2*perKey)
	}
	retries := 0
	for _, s := range scans(plan) {
		if s.Index == "outbox_messages_retry_heads_idx" {
			retries++
		}
	}
	if retries == 0 {
		t.Fatal("the claim without a walk does not read the retry heads' index")
	}
	if read := onlyIndexes(t, "the generic claim without a walk", explainGeneric(t, pool, false, claim, args...), false); read > 2*(2+2*perKey)+4 {
		t.Fatalf("the generic claim without a walk read %.0f rows", read)
	}

	want := []string{due[0] + "/1"}
	for s := 1; s <= perKey; s++ {
		want = append(want, fmt.Sprintf("%s/%d", due[1], s))
	}
	if got := claimedKeys(t, pool, claim, args...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed %v\nwant %v", got, want)
	}
	for s := 1; s <= perKey; s++ {
		want = append(want, fmt.Sprintf("%s/%d", due[2], s))
	}
	walk := dbschema.Render(claimSQL, "outboxd")
	if got := claimedKeys(t, pool, walk, args[:7]...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the walk claimed %v\nwant %v", got, want)
	}
}

// claimedKeys runs a claim and returns key/seq of each row.
func claimedKeys(t *testing.T, pool *pgxpool.Pool, claim string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), claim, args...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v/%v", vals[3], vals[4]))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return got
}
