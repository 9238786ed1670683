package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/loglimit"
	"github.com/outboxd/outboxd/internal/nilcheck"
)

// DefaultMaxBody is the largest body a source accepts unless configured.
const DefaultMaxBody = 1 << 20

// HandlerFunc does an event's work inside tx, the transaction that recorded
// it: business writes, outbox enqueues. Return Permanent(err) for an event
// that can never be processed (422), Transient(err) or any other error to
// have the sender retry (503). A PostgreSQL data exception (SQLSTATE class
// 22: a NUL byte, invalid UTF-8, a value out of range) or program limit
// (54000), and a message the outbox refuses for its data
// (outbox.ErrUnstorable: a field too long, a payload over MaxPayload,
// headers over 64 KiB, text with a NUL byte or invalid UTF-8) count as
// permanent: the same payload raises them on every retry. Other refusals
// of the outbox (no destination, a bad header name) are usually the
// code's or the configuration's: retried (503) until a fix is deployed.
// The effects commit together with the inbox record, or not at all.
type HandlerFunc func(ctx context.Context, tx pgx.Tx, d *Delivery) error

// Delivery is one verified webhook, new inside the dedupe window.
type Delivery struct {
	// Source is the name of the source it came to.
	Source string
	// ID is the provider's event id, or BodyID(Body) when it sent none
	// (BestEffort).
	ID string
	// BestEffort marks an ID derived from the body: two events with
	// identical bodies are one.
	BestEffort bool
	// Type is the provider's event type, "" when it gives none.
	Type string
	// OccurredAt is the event's own time from the payload (zero when the
	// provider gives none): the same on every retry, so compare-and-swap
	// on it to ignore an event older than the state.
	OccurredAt time.Time
	// SignedAt is when this delivery was signed: a retry is signed afresh,
	// so never order events by it.
	SignedAt time.Time
	// Body is the request body exactly as received.
	Body []byte
	// Header is the request's header (all of it: the redaction applies to
	// what is stored, not to what the handler sees).
	Header http.Header

	inbox *Inbox // recorded the event; AddRefs writes through it
}

// AddRefs adds search references (contact id, email, record id...) to the
// delivery's event, in db: pass the handler's tx so they commit with the
// record. Existing names are overwritten. It fails on a Delivery that no
// Receiver made (there is no inbox to write to).
func (d *Delivery) AddRefs(ctx context.Context, db DB, refs map[string]string) error {
	if d.inbox == nil {
		return errors.New("inbox: Delivery.AddRefs: this Delivery was not made by a Receiver or Inbox.NewDelivery")
	}
	return d.inbox.AddRefs(ctx, db, d.Source, d.ID, refs)
}

// NewDelivery returns a Delivery of the event source/id as a Receiver would
// hand it to a handler, for calling a handler in a unit test or a replay of
// a stored event: its AddRefs writes through in. Set the other fields
// (Body, Type...) as the handler needs them; the event must be recorded
// (Inbox.Record) for AddRefs to find it.
func (in *Inbox) NewDelivery(source, id string) *Delivery {
	return &Delivery{Source: source, ID: id, inbox: in}
}

// Source is one sender the receiver accepts.
type Source struct {
	// Name is the source's name in the inbox and in the URL (/{name}).
	// Required: no '/' or '\', not "." or "..", UTF-8 without NUL.
	Name string
	// Verifier authenticates its requests. Required.
	Verifier verify.Verifier
	// Handle does the work of a new event. Required.
	Handle HandlerFunc
	// MaxBody bounds the request body (413 beyond). Default 1 MiB;
	// NewReceiver refuses a negative one.
	MaxBody int64
	// Async answers 200 as soon as the event and a River job to process it
	// are committed; the job runs Handle later (see AsyncWorker). Default
	// false: Handle runs in the request's transaction.
	Async bool
	// BodyDedupe also dedupes on a hash of the body, so that a captured
	// request replayed under a fresh id is a duplicate. By default
	// (BodyDedupeAuto) it is on for providers whose id header is unsigned
	// and whose body is unique per event (verify.Meta.BodyUnique: GitHub,
	// Shopify, Twilio, Linear; docs/receiving.md, "Body dedupe").
	BodyDedupe BodyDedupe
}

// BodyDedupe says whether a source dedupes on the body's hash as well as
// on the event id.
type BodyDedupe int

const (
	// BodyDedupeAuto follows the verifier (verify.Meta.BodyUnique).
	BodyDedupeAuto BodyDedupe = iota
	// BodyDedupeOn dedupes on the body for every event of the source.
	BodyDedupeOn
	// BodyDedupeOff dedupes on the event id only: for a provider that may
	// send two distinct events with identical bodies.
	BodyDedupeOff
)

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Sources are the senders the receiver accepts. Required: at least one.
	Sources []Source
	// RetryAfter is sent with 503 answers, in whole seconds rounded up.
	// Default 5 s; NewReceiver refuses a negative one.
	RetryAfter time.Duration
	// Metrics, when set, is updated for every request (NewMetrics).
	// Default nil: no metrics.
	Metrics *Metrics
	// Logger receives a line per refused or failed request. Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for timestamp tolerances. Default time.Now.
	Now func() time.Time
	// River inserts the jobs of async sources, in the receipt transaction.
	// Required when a source is Async, else unused (default nil). Its
	// schema must be the inbox's: NewReceiver checks it when the value has
	// a Schema() string method (as *river.Client[pgx.Tx] has) that names
	// one.
	River JobInserter
	// MaxConcurrent caps the requests the receiver serves at once, body
	// reading included; beyond it the answer is 503 with Retry-After, so
	// slow or flooding clients cannot hold every connection of the pool.
	// Duplicates of an event under way in this process wait for it within
	// their slot but without a connection. Default 128; each request being
	// processed holds a pool connection, so past the pool's size requests
	// wait for one (pgxpool's MaxConns, 4 or the CPU count by default).
	MaxConcurrent int
	// Timeout bounds a verified request's receipt: the wait behind a
	// duplicate under way, for a connection, and the transaction with its
	// handler; its COMMIT or ROLLBACK and the failure row have 2 s each
	// past it. Past it the answer is 503 with Retry-After and the
	// transaction rolls back: a database that
	// stops answering (a partition, a frozen server) left requests without
	// an answer for as long as their senders waited. It cuts what honours
	// its context (the database calls, a handler's own calls given its
	// ctx): a handler that ignores ctx runs to its end, and its receipt
	// commits and answers as usual. Default DefaultReceiptTimeout;
	// negative: none. Keep it above your slowest
	// handler, and below your senders' own timeouts where you can (they
	// give up on an answer anyway).
	Timeout time.Duration
}

// DefaultReceiptTimeout is ReceiverConfig.Timeout's default.
const DefaultReceiptTimeout = 30 * time.Second

// Receiver is an http.Handler for webhooks from several sources, routed by
// the last path segment (/webhooks/stripe goes to the source "stripe"), or
// one source's handler (For).
type Receiver struct {
	pool    ReceiverDB
	inbox   *Inbox
	cfg     ReceiverConfig
	sources map[string]*Source
	log     *slog.Logger
	failSQL string
	slots   chan struct{}
	// inflight queues the duplicates of an event under way here.
	inflight inflight
	// logs keeps the lines about unauthenticated requests, which anyone
	// can send, to one per source per 10 s.
	logs loglimit.Limiter
	// sigHeaders: per source, signature headers that the name rule of
	// the inbox's redaction might miss (verify.HMAC's is configurable).
	sigHeaders map[string][]string
}

// NewReceiver returns a Receiver that records events with in, through
// pool. A nil cfg has no sources, so it is refused like any configuration
// without its required fields: the error names the field.
func NewReceiver(pool ReceiverDB, in *Inbox, cfg *ReceiverConfig) (*Receiver, error) {
	if nilcheck.IsNil(pool) {
		return nil, errors.New("inbox: NewReceiver needs a pool (got nil)")
	}
	if in == nil {
		return nil, errors.New("inbox: NewReceiver needs an Inbox (got nil)")
	}
	var c ReceiverConfig
	if cfg != nil {
		c = *cfg
	}
	if len(c.Sources) == 0 {
		return nil, errors.New("inbox: ReceiverConfig.Sources is required")
	}
	if nilcheck.IsNil(c.River) {
		c.River = nil // a client variable left nil: no River, as when the field was a pointer
	}
	if rs, ok := c.River.(interface{ Schema() string }); ok && rs.Schema() != "" && rs.Schema() != in.cfg.Schema {
		return nil, fmt.Errorf("inbox: ReceiverConfig.River works schema %q, the inbox %q: async jobs would never run", rs.Schema(), in.cfg.Schema)
	}
	rc := &Receiver{pool: pool, inbox: in, cfg: c, sources: map[string]*Source{}, failSQL: in.render(recordFailureSQL),
		sigHeaders: map[string][]string{}}
	if rc.cfg.RetryAfter == 0 {
		rc.cfg.RetryAfter = 5 * time.Second
	}
	if rc.cfg.RetryAfter < 0 {
		return nil, fmt.Errorf("inbox: ReceiverConfig.RetryAfter (%s) must be positive (0: the default, 5 s)", rc.cfg.RetryAfter)
	}
	if rc.cfg.Now == nil {
		rc.cfg.Now = time.Now
	}
	if rc.cfg.Timeout == 0 {
		rc.cfg.Timeout = DefaultReceiptTimeout
	}
	if rc.cfg.MaxConcurrent == 0 {
		rc.cfg.MaxConcurrent = 128
	}
	if rc.cfg.MaxConcurrent < 0 {
		return nil, errors.New("inbox: ReceiverConfig.MaxConcurrent must be positive")
	}
	rc.slots = make(chan struct{}, rc.cfg.MaxConcurrent)
	rc.logs.Every = 10 * time.Second
	rc.log = c.Logger
	if rc.log == nil {
		rc.log = slog.Default()
	}
	rc.log = rc.log.With("component", "outboxd.inbox")
	for i := range c.Sources {
		s := c.Sources[i]
		switch {
		case s.Name == "" || strings.ContainsAny(s.Name, "/\\") || s.Name == "." || s.Name == "..":
			return nil, fmt.Errorf("inbox: source %d: a name without '/' or '\\', and not a dot segment, is required", i)
		case checkText("source name", s.Name) != nil:
			return nil, fmt.Errorf("inbox: source %d: the name must be UTF-8 without NUL", i)
		case nilcheck.IsNil(s.Verifier):
			return nil, fmt.Errorf("inbox: source %s: Verifier is required", s.Name)
		case s.Handle == nil:
			return nil, fmt.Errorf("inbox: source %s: Handle is required", s.Name)
		case rc.sources[s.Name] != nil:
			return nil, fmt.Errorf("inbox: source %s configured twice", s.Name)
		}
		if s.Async && c.River == nil {
			return nil, fmt.Errorf("inbox: source %s is async: ReceiverConfig.River is required", s.Name)
		}
		if s.MaxBody == 0 {
			s.MaxBody = DefaultMaxBody
		}
		if s.MaxBody < 0 {
			return nil, fmt.Errorf("inbox: source %s: MaxBody (%d) must be positive (0: DefaultMaxBody, 1 MiB)", s.Name, s.MaxBody)
		}
		if sh, ok := s.Verifier.(interface{ SignatureHeaders() []string }); ok {
			rc.sigHeaders[s.Name] = sh.SignatureHeaders()
		}
		rc.sources[s.Name] = &s
	}
	rc.warnUnknownSources()
	return rc, nil
}
