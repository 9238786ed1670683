package worker

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// An idle probe that hangs (here behind a lock; in production a connection
// left half open by a failover) gives up after a sweep, at least a second
// (docs/design.md, "Idle lanes park"): its lanes then claim, rather than
// stay blind to commits whose wake-up was lost.
func TestAHangingIdleProbeGivesUpAfterASecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	d := newIdleProber(t, pool, 100*time.Millisecond)
	lockMessages(t, pool)
	type answer struct {
		err  error
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		start := time.Now()
		_, err := d.probeLanes(ctx, []Lane{{"sink", 3}})
		done <- answer{err, time.Since(start)}
	}()
	waitForLockWait(t, pool, "outbox_messages")
	select {
	case a := <-done:
		if !errors.Is(a.err, context.DeadlineExceeded) || a.took < time.Second {
			t.Fatalf("the probe answered %v after %s; want it to give up after 1 s", a.err, a.took)
		}
		t.Logf("the probe gave up after %s", a.took.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the probe still waits after 10 s")
	}
}

// A round slower than half a sweep (here held 500 ms behind a lock, the
// sweep 400 ms, well within the probe's 1 s) is followed by the next half
// a sweep after it answers, not at once: the lanes it released must have
// joined that next round, or they would wait a whole sweep more
// (docs/design.md, "Idle lanes park").
func TestARoundAfterASlowOneComesHalfASweepLater(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	const sweep = 400 * time.Millisecond
	d := newIdleProber(t, pool, sweep)
	blocker := lockMessages(t, pool)
	lane := Lane{"sink", 1}
	slow := d.idle.join(lane)
	go d.probeIdleLanes(ctx)
	waitForLockWait(t, pool, "outbox_messages")
	time.Sleep(500 * time.Millisecond) // makes the round slow; proves nothing
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	<-slow.done
	answered := time.Now()
	next := d.idle.join(lane) // as its runner does, once the round answered
	select {
	case <-next.done:
	case <-time.After(5 * time.Second):
		t.Fatal("no round after the slow one")
	}
	gap := time.Since(answered)
	t.Logf("the next round answered %s after the slow one (sweep %s)", gap.Round(time.Millisecond), sweep)
	// At once (the round taken before the lane joined it), the lane then
	// a sweep later: 0 or 400 ms. The test's own wake-up may come late.
	if gap < sweep/2-170*time.Millisecond || gap > sweep/2+150*time.Millisecond {
		t.Fatalf("the next round answered %s after the slow one; want half a sweep, %s", gap, sweep/2)
	}
}

// newIdleProber is a dispatcher, not started, whose idle probe a test
// runs itself.
func newIdleProber(t *testing.T, pool *pgxpool.Pool, sweep time.Duration) *Dispatcher {
	t.Helper()
	d, err := New(pool, &Config{SweepInterval: sweep, DisableRiver: true,
		Destinations: map[string]dispatch.Destination{"sink": dispatch.DestinationFunc(
			func(context.Context, dispatch.Message) dispatch.Result {
				return dispatch.Result{Outcome: dispatch.Delivered}
			})}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// lockMessages holds outbox_messages locked until the test ends or it
// rolls the transaction back.
func lockMessages(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// A probe waits for a connection as long as it takes (here 1.5 s, its
// pool's only one held by the test), rather than fail after a second
// and send every parked lane to claim on a pool busy with claims.
func TestAnIdleProbeWaitsForAConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	d := newIdleProber(t, pool, 100*time.Millisecond)
	held, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(held.Release)
	defer release() // before pool.Close, which waits for it
	done := make(chan error, 1)
	go func() {
		_, err := d.probeLanes(ctx, []Lane{{"sink", 3}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the probe answered %v with no connection to run on", err)
	case <-time.After(1500 * time.Millisecond): // past its statement's 1 s
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("the probe, given a connection after 1.5 s: %v", err)
	}
}

// A connection the probe cannot get in time while the pool is not busy
// (here a server that accepts and never answers; after a failover, a
// pooled connection half open, whose liveness ping pgxpool waits for)
// fails the probe after a sweep, at least a second: its lanes claim,
// rather than stay blind to commits whose wake-up was lost.
func TestAnIdleProbeGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+ln.Addr().String()+"/silent?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	d := newIdleProber(t, pool, 100*time.Millisecond)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := d.probeLanes(context.Background(), []Lane{{"sink", 3}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the probe answered %v; want it to give up", err)
		}
		t.Logf("the probe gave up after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the probe still waits for a connection after 10 s")
	}
}
