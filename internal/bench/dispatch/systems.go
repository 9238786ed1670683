package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

var (
	quiet           = slog.New(slog.NewTextHandler(io.Discard, nil))
	batchSize       = flag.Int("batch", 0, "outboxd: messages per claim (0: the default)")
	httpConcurrency = flag.Int("http-concurrency", 0, "outboxd: requests in flight to the sink (0: the HTTP destination's default, 16)")
	pollerLoops     = flag.Int("poller-loops", 8, "the hand-written poller: loops, each posting its batch one request at a time")
)

// designs are the systems under test by their -designs names, measured
// in designOrder.
var designs = map[string]func(*pgxpool.Pool, string) (system, error){
	"outboxd": newOutboxd, "apart": newOutboxdApart, "slow": newOutboxdBesideSlow, "poller": newPoller, "river": newRiverBaseline,
}

var designOrder = []string{"outboxd", "apart", "slow", "poller", "river"}

func payload(i int) []byte { return fmt.Appendf(nil, `{"n":%d,"event":"deal.won"}`, i) }

// outboxdSystem is outboxd's dispatcher with default settings.
type outboxdSystem struct {
	pool *pgxpool.Pool
	ob   *outbox.Outbox
	d    *worker.Dispatcher
}

func newOutboxd(pool *pgxpool.Pool, sinkURL string) (system, error) {
	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: sinkURL, MaxConcurrency: *httpConcurrency})
	if err != nil {
		return nil, err
	}
	d, err := worker.New(pool, &worker.Config{Destinations: map[string]dispatch.Destination{"sink": dest}, Logger: quiet, BatchSize: *batchSize})
	if err != nil {
		return nil, err
	}
	ob, err := notifyingOutbox(pool)
	if err != nil {
		return nil, err
	}
	return &outboxdSystem{pool: pool, ob: ob, d: d}, nil
}

// apartSystem is outboxd with its dispatcher on a pool of its own, as
// `outboxd serve` runs it beside an application: the producers' pool then
// holds only their connections, which the drain's claims never used.
type apartSystem struct {
	*outboxdSystem
	own *pgxpool.Pool
}

func newOutboxdApart(pool *pgxpool.Pool, sinkURL string) (system, error) {
	own, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		return nil, err
	}
	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: sinkURL, MaxConcurrency: *httpConcurrency})
	if err != nil {
		own.Close()
		return nil, err
	}
	d, err := worker.New(own, &worker.Config{Destinations: map[string]dispatch.Destination{"sink": dest}, Logger: quiet, BatchSize: *batchSize})
	if err != nil {
		own.Close()
		return nil, err
	}
	ob, err := notifyingOutbox(pool)
	if err != nil {
		own.Close()
		return nil, err
	}
	return &apartSystem{outboxdSystem: &outboxdSystem{pool: pool, ob: ob, d: d}, own: own}, nil
}

func (s *apartSystem) name() string { return "outboxd, dispatcher's own pool" }

func (s *apartSystem) stop(ctx context.Context) error {
	err := s.d.Stop(ctx)
	s.own.Close()
	return err
}

// notifyingOutbox is an Outbox whose commits are announced by a Notifier,
// as an application at these rates should run it. It stops with the pool.
func notifyingOutbox(pool *pgxpool.Pool) (*outbox.Outbox, error) {
	n, err := outbox.NewNotifier(pool, &outbox.NotifierConfig{Logger: quiet})
	if err != nil {
		return nil, err
	}
	if err := n.Start(context.Background()); err != nil {
		return nil, err
	}
	return outbox.New(&outbox.Config{Notifier: n})
}

// outboxdName is the design the summary lines compare the others with.
const outboxdName = "outboxd (lanes, batches)"

func (s *outboxdSystem) name() string { return outboxdName }

// enqueue commits the message in a transaction of its own, as an
// application enqueues beside its writes: the Notifier then learns of the
// transaction before its commit.
func (s *outboxdSystem) enqueue(ctx context.Context, i int) (string, error) {
	var key string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		e, err := s.ob.Enqueue(ctx, tx, outbox.Message{Destination: "sink", Type: "deal.won", Payload: payload(i)})
		key = e.IdempotencyKey
		return err
	})
	return key, err
}

func (s *outboxdSystem) start(ctx context.Context) error { return s.d.Start(ctx) }
func (s *outboxdSystem) stop(ctx context.Context) error  { return s.d.Stop(ctx) }

// riverSystem is the simplest River outbox: one job per message, inserted
// with the outbox row; the worker posts, then marks the row delivered and
// completes the job in one transaction. River's default fetch settings.
type riverSystem struct {
	pool   *pgxpool.Pool
	ob     *outbox.Outbox
	client *river.Client[pgx.Tx]
}

type postArgs struct {
	MessageID uuid.UUID `json:"message_id"`
}

func (postArgs) Kind() string { return "bench_post" }

type postWorker struct {
	river.WorkerDefaults[postArgs]
	pool *pgxpool.Pool
	http *http.Client
	url  string
}

func (w *postWorker) Work(ctx context.Context, job *river.Job[postArgs]) error {
	var (
		body []byte
		key  string
	)
	if err := w.pool.QueryRow(ctx, `SELECT payload, idempotency_key FROM outboxd.outbox_messages WHERE id = $1`, job.Args.MessageID).Scan(&body, &key); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := w.http.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'delivered', delivered_at = now() WHERE id = $1`, job.Args.MessageID); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

func newRiverBaseline(pool *pgxpool.Pool, sinkURL string) (system, error) {
	s := &riverSystem{pool: pool}
	s.ob, _ = outbox.New(nil)
	workers := river.NewWorkers()
	river.AddWorker(workers, &postWorker{pool: pool, url: sinkURL,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:  "outboxd",
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 64}},
		Workers: workers,
		Logger:  quiet,
	})
	if err != nil {
		return nil, err
	}
	s.client = client
	return s, nil
}

const riverName = "River, one job per message"

func (s *riverSystem) name() string { return riverName }

// enqueue writes a message row that no outboxd dispatcher runs for (its
// destination is only River's) and the job, in one transaction.
func (s *riverSystem) enqueue(ctx context.Context, i int) (string, error) {
	var key string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		e, err := s.ob.Enqueue(ctx, tx, outbox.Message{Destination: "river-sink", Type: "deal.won", Payload: payload(i)})
		if err != nil {
			return err
		}
		key = e.IdempotencyKey
		_, err = s.client.InsertTx(ctx, tx, postArgs{MessageID: e.ID}, nil)
		return err
	})
	return key, err
}

func (s *riverSystem) start(ctx context.Context) error { return s.client.Start(ctx) }
func (s *riverSystem) stop(ctx context.Context) error  { return s.client.Stop(ctx) }

// besideSlowSystem is outboxd's dispatcher draining the sink while a second
// destination times out on every request (1 s timeout, a 640-message
// backlog over 64 keys): the healthy destination's figures should match
// the plain outboxd row.
type besideSlowSystem struct {
	*outboxdSystem
	slow   *httptest.Server
	closed chan struct{}
}

func newOutboxdBesideSlow(pool *pgxpool.Pool, sinkURL string) (system, error) {
	closed := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select { // never answers: every request times out
		case <-r.Context().Done():
		case <-closed:
		}
	}))
	fast, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: sinkURL, MaxConcurrency: *httpConcurrency})
	if err != nil {
		return nil, err
	}
	hanging, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: slow.URL, MaxConcurrency: 16, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	d, err := worker.New(pool, &worker.Config{
		Destinations: map[string]dispatch.Destination{"sink": fast, "slow": hanging},
		Logger:       quiet, BatchSize: *batchSize,
	})
	if err != nil {
		return nil, err
	}
	ob, err := notifyingOutbox(pool)
	if err != nil {
		return nil, err
	}
	return &besideSlowSystem{outboxdSystem: &outboxdSystem{pool: pool, ob: ob, d: d}, slow: slow, closed: closed}, nil
}

const besideSlowName = "outboxd, another destination timing out"

func (s *besideSlowSystem) name() string { return besideSlowName }

func (s *besideSlowSystem) start(ctx context.Context) error {
	var msgs []outbox.Message
	for i := range 640 {
		msgs = append(msgs, outbox.Message{Destination: "slow", OrderingKey: fmt.Sprintf("slow-%d", i%64), Payload: payload(i)})
	}
	if _, err := s.ob.EnqueueBatch(ctx, s.pool, msgs); err != nil {
		return err
	}
	return s.d.Start(ctx)
}

func (s *besideSlowSystem) stop(ctx context.Context) error {
	err := s.d.Stop(ctx)
	close(s.closed)
	s.slow.Close()
	return err
}

// pollerSystem is the relay people write by hand: its own outbox table, a
// plain INSERT per message, and 8 loops (-poller-loops) that each claim 100 rows with FOR
// UPDATE SKIP LOCKED, post them, and mark them sent in the same
// transaction, sleeping 10 ms when nothing is pending. No ordering, no
// attempt records, no retries beyond "try the batch again".
type pollerSystem struct {
	pool *pgxpool.Pool
	url  string
	http *http.Client
	quit chan struct{}
	done sync.WaitGroup
}

func newPoller(pool *pgxpool.Pool, sinkURL string) (system, error) {
	_, err := pool.Exec(context.Background(), `CREATE TABLE relay_outbox (
    id bigserial PRIMARY KEY, idempotency_key text NOT NULL, payload bytea NOT NULL, sent_at timestamptz)`)
	if err != nil {
		return nil, err
	}
	_, err = pool.Exec(context.Background(), `CREATE INDEX relay_outbox_unsent ON relay_outbox (id) WHERE sent_at IS NULL`)
	return &pollerSystem{pool: pool, url: sinkURL, quit: make(chan struct{}),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}}, err
}

func (s *pollerSystem) name() string { return pollerName() }

func pollerName() string {
	return fmt.Sprintf("hand-written SKIP LOCKED poller (%d x 100)", *pollerLoops)
}

func (s *pollerSystem) enqueue(ctx context.Context, i int) (string, error) {
	key := uuid.NewString()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO relay_outbox (idempotency_key, payload) VALUES ($1, $2)`, key, payload(i))
		return err
	})
	return key, err
}

func (s *pollerSystem) start(ctx context.Context) error {
	for range *pollerLoops {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			for {
				select {
				case <-s.quit:
					return
				default:
				}
				n, err := s.once(ctx)
				if err != nil || n == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	return nil
}

// once relays one batch: claim, post each, mark sent, commit.
func (s *pollerSystem) once(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, idempotency_key, payload FROM relay_outbox
WHERE sent_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			return err
		}
		type row struct {
			id   int64
			key  string
			body []byte
		}
		batch, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
			var r row
			return r, cr.Scan(&r.id, &r.key, &r.body)
		})
		if err != nil {
			return err
		}
		ids := make([]int64, 0, len(batch))
		for _, r := range batch {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(r.body))
			if err != nil {
				return err
			}
			req.Header.Set("Idempotency-Key", r.key)
			resp, err := s.http.Do(req)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 300 {
				ids = append(ids, r.id)
			}
		}
		n = len(ids)
		_, err = tx.Exec(ctx, `UPDATE relay_outbox SET sent_at = now() WHERE id = ANY($1)`, ids)
		return err
	})
	return n, err
}

func (s *pollerSystem) stop(context.Context) error {
	close(s.quit)
	s.done.Wait()
	return nil
}
