package inbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// ProcessArgs is the River job of an event received in async mode.
type ProcessArgs struct {
	Source  string `json:"source"`   // the event's source
	EventID string `json:"event_id"` // the event's id
}

// Kind is the River job kind.
func (ProcessArgs) Kind() string { return "outboxd_inbox_process" }

// enqueueAsync records a new event as received and inserts its River job,
// in the receipt transaction: both exist, or neither.
func (rc *Receiver) enqueueAsync(ctx context.Context, tx pgx.Tx, d *Delivery) error {
	if rc.cfg.River == nil {
		return errors.New("inbox: an async source needs ReceiverConfig.River")
	}
	_, err := rc.cfg.River.InsertTx(ctx, tx, ProcessArgs{Source: d.Source, EventID: d.ID}, nil)
	return err
}

// AsyncWorker runs async sources' handlers. Register it with the River
// client that works the jobs (river.AddWorker(workers, rc.AsyncWorker())).
//
// Each job runs in one transaction: it marks the event processed (a
// compare-and-swap from received: a job that runs again after its event was
// processed does nothing), runs the handler, and completes the job. A crash
// or an error before commit leaves the event received and the job to River's
// retry, so the handler runs again, from scratch, until it commits once. A
// handler error that is permanent (marked Permanent, or one the receiver
// answers 422: see HandlerFunc) rejects the event and cancels the job.
func (rc *Receiver) AsyncWorker() river.Worker[ProcessArgs] {
	return &asyncWorker{rc: rc}
}

type asyncWorker struct {
	river.WorkerDefaults[ProcessArgs]
	rc *Receiver
}

func (w *asyncWorker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	rc := w.rc
	src := rc.sources[job.Args.Source]
	if src == nil {
		return river.JobCancel(fmt.Errorf("%w: %q in this receiver", ErrUnknownSource, job.Args.Source))
	}
	start := time.Now()
	status := "processed"
	db, release, err := rc.receiptDB(ctx)
	if err != nil {
		return err
	}
	defer release()
	err = rc.inTx(ctx, db, func(tx pgx.Tx) error {
		ok, err := rc.inbox.MarkProcessed(ctx, tx, job.Args.Source, job.Args.EventID)
		if err != nil {
			return err
		}
		if ok {
			ev, err := rc.inbox.Get(ctx, tx, job.Args.Source, job.Args.EventID)
			if err != nil {
				return err
			}
			d := &Delivery{Source: ev.Source, ID: ev.ID, BestEffort: ev.BestEffort, Type: ev.Type,
				Body: ev.Payload, Header: ev.Headers, inbox: rc.inbox}
			if ev.OccurredAt != nil {
				d.OccurredAt = *ev.OccurredAt
			}
			if ev.SignedAt != nil {
				d.SignedAt = *ev.SignedAt
			}
			if err := src.Handle(ctx, tx, d); err != nil {
				return err
			}
		} else {
			status = "duplicate"
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	rc.cfg.Metrics.observeAsync(src.Name, status, err, time.Since(start))
	var p *panicError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &p):
		rc.recordFailure(db, src.Name, job.Args.EventID, FailurePanic, err.Error(), 0)
		return err
	case permanent(err):
		if rerr := rc.inbox.markRejected(ctx, db, job.Args.Source, job.Args.EventID, err.Error()); rerr != nil {
			return rerr
		}
		rc.recordFailure(db, src.Name, job.Args.EventID, FailureRejected, err.Error(), 0)
		return river.JobCancel(err)
	default:
		rc.recordFailure(db, src.Name, job.Args.EventID, FailureFailed, err.Error(), 0)
		return err
	}
}
