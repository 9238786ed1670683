package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/nilcheck"
)

// Config configures a Dispatcher.
type Config struct {
	// Schema holds outboxd's tables. Default "outboxd".
	Schema string
	// Destinations by name. Required: at least one, each non-nil, with a
	// non-empty name. The dispatcher drains only these; messages for other
	// destinations are left pending for the dispatchers that have them (and
	// reported by Unserved while no live one does), never dead-lettered.
	Destinations map[string]dispatch.Destination
	// Retry is the default retry policy. Default: RetryPolicy's defaults.
	Retry RetryPolicy
	// RetryByDestination overrides Retry per destination, field by field: a
	// zero field takes Retry's value. A key that names no destination is
	// an error. Default: none.
	RetryByDestination map[string]RetryPolicy
	// BatchSize bounds the messages one claim takes from a lane. Default 200.
	BatchSize int
	// BatchBytes bounds the bytes (payloads and headers) one claim takes
	// from a lane, as BatchSize bounds its messages: a claim keeps a
	// message while those it kept before it are under BatchBytes, so it
	// stops at the first that brings it to BatchBytes or more, and its
	// first message goes whatever its size. A dispatcher so holds at most
	// about 2 x (BatchBytes + the largest message) per lane it serves (a
	// claim's keyed and unkeyed messages are bounded apart; a destination
	// has 32 lanes), where 200 messages of outbox.DefaultMaxPayload were
	// 200 MiB per lane. The messages left out are claimed next, at once.
	// Default 1 MiB (DefaultBatchBytes).
	BatchBytes int64
	// PerKeyBatch bounds how many messages of one ordering key a claim
	// takes (they are still sent one at a time). Default 10.
	PerKeyBatch int
	// LeaseTTL is how long a lane stays ours without renewal, and how long
	// this dispatcher counts as live after its last heartbeat: another
	// dispatcher takes its lanes within LeaseTTL + AcquireInterval of a
	// crash. No delivery starts, and none stays in flight, past the lease.
	// Default 10 s.
	LeaseTTL time.Duration
	// AcquireInterval is how often leases are renewed and lanes balanced.
	// Default 1 s; must be well below LeaseTTL.
	AcquireInterval time.Duration
	// SweepInterval is how often an idle lane looks for due retries without
	// being woken, and for commits whose wake-up was lost; an empty lane's
	// look is the dispatcher's idle probe, one statement for all of them
	// (idle.go). Default 1 s.
	SweepInterval time.Duration
	// Maintenance configures the purge, a River job queued every interval. Default:
	// Maintenance's defaults.
	Maintenance Maintenance
	// ID names this dispatcher in leases and attempt records: UTF-8 text
	// without control characters, at most 100 bytes (River's limit for a
	// client's id). Default hostname-pid-random.
	ID string
	// Logger receives operational logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics, when set, is updated as messages are delivered. Default nil:
	// no metrics.
	Metrics *Metrics
	// DisableRiver runs without River's client (and so without the
	// maintenance jobs); for tests of the drain alone. Default
	// false.
	DisableRiver bool
}

// Maintenance configures the purge of old rows.
type Maintenance struct {
	// Interval between purge runs. Default 1 min.
	Interval time.Duration
	// DeliveredRetention: delivered messages (and their attempts) older than
	// this are deleted. Default 7 days.
	DeliveredRetention time.Duration
	// FailureRetention: rows of the inbox failure log not seen again for
	// this long are deleted. Default 7 days.
	FailureRetention time.Duration
	// BatchSize rows are deleted per statement, so no statement holds locks
	// long. Default 1000.
	BatchSize int
	// Duty is the share of time the purge spends deleting: after each batch
	// it rests so that deleting takes at most this fraction, leaving the
	// server to live traffic. Default (0) 0.25; New refuses a value below
	// 0 or above 1.
	Duty float64
}

func (c *Config) withDefaults() Config {
	out := *c
	out.Schema = dbschema.OrDefault(out.Schema)
	out.Retry = out.Retry.withDefaults()
	if out.BatchSize == 0 {
		out.BatchSize = 200
	}
	if out.BatchBytes == 0 {
		out.BatchBytes = DefaultBatchBytes
	}
	if out.PerKeyBatch == 0 {
		out.PerKeyBatch = 10
	}
	if out.LeaseTTL == 0 {
		out.LeaseTTL = 10 * time.Second
	}
	if out.AcquireInterval == 0 {
		out.AcquireInterval = time.Second
	}
	if out.SweepInterval == 0 {
		out.SweepInterval = time.Second
	}
	if out.Maintenance.Interval == 0 {
		out.Maintenance.Interval = time.Minute
	}
	if out.Maintenance.DeliveredRetention == 0 {
		out.Maintenance.DeliveredRetention = 7 * 24 * time.Hour
	}
	if out.Maintenance.FailureRetention == 0 {
		out.Maintenance.FailureRetention = 7 * 24 * time.Hour
	}
	if out.Maintenance.BatchSize == 0 {
		out.Maintenance.BatchSize = 1000
	}
	if out.Maintenance.Duty == 0 {
		out.Maintenance.Duty = 0.25
	}
	if out.ID == "" {
		out.ID = defaultIDHost() + "-" + strconv.Itoa(os.Getpid()) + "-" + uuid.NewString()[:8]
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}

// DefaultBatchBytes is Config.BatchBytes's default: 1 MiB.
const DefaultBatchBytes = 1 << 20

// maxIDLen bounds Config.ID: River refuses a longer client id.
const maxIDLen = 100

// defaultIDHost is the host name as the default ID's prefix: made valid
// (a host name may be any bytes) and cut to 64 bytes on a rune boundary,
// so that the default always passes CheckID.
func defaultIDHost() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if oddRune(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(host, "?"))
	for len(host) > 64 {
		_, size := utf8.DecodeLastRuneInString(host)
		host = host[:len(host)-size]
	}
	return host
}

// oddRune is a control character, a line or paragraph separator, or a
// format character (a direction override): nothing an id shown on one
// line of a log may hold.
func oddRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Cf)
}

// CheckID says why id cannot name a dispatcher (Config.ID), or returns
// nil. It is stored in leases and attempt rows and named in logs: it must
// be text PostgreSQL takes (a trial's invalid UTF-8 started, then failed
// every statement for ever), on one line, and at most 100 bytes.
func CheckID(id string) error {
	if !utf8.ValidString(id) || strings.ContainsFunc(id, oddRune) {
		return errors.New("must be UTF-8 text without control characters")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("is %d bytes, at most %d", len(id), maxIDLen)
	}
	return nil
}

func (c *Config) validate() error {
	if err := dbschema.Validate(c.Schema); err != nil {
		return fmt.Errorf("worker: Config.Schema: %w", err)
	}
	if len(c.Destinations) == 0 {
		return errors.New("worker: Config.Destinations is required (at least one destination)")
	}
	if err := CheckID(c.ID); err != nil {
		return fmt.Errorf("worker: Config.ID: %w", err)
	}
	for name, d := range c.Destinations {
		if name == "" {
			// outbox.Enqueue refuses an empty Destination: nothing could reach it.
			return errors.New("worker: Config.Destinations has an empty name")
		}
		if nilcheck.IsNil(d) {
			return fmt.Errorf("worker: Config.Destinations[%q] is nil", name)
		}
	}
	for name := range c.RetryByDestination {
		if _, ok := c.Destinations[name]; !ok {
			return fmt.Errorf("worker: Config.RetryByDestination[%q] names no destination of Config.Destinations", name)
		}
	}
	if c.BatchSize < 0 || c.PerKeyBatch < 0 || c.BatchBytes < 0 {
		return errors.New("worker: Config.BatchSize, BatchBytes and PerKeyBatch must be positive")
	}
	if c.BatchSize > MaxCount || c.PerKeyBatch > MaxCount || c.Maintenance.BatchSize > MaxCount {
		return fmt.Errorf("worker: Config.BatchSize, PerKeyBatch and Maintenance.BatchSize must be at most %d (MaxCount)", MaxCount)
	}
	if c.LeaseTTL < 0 || c.AcquireInterval < 0 || c.SweepInterval < 0 {
		return errors.New("worker: Config.LeaseTTL, AcquireInterval and SweepInterval must not be negative")
	}
	if d := c.Maintenance.Duty; !(d > 0 && d <= 1) {
		return fmt.Errorf("worker: Config.Maintenance.Duty (%g) must be between 0 and 1 (0: the default, 0.25)", d)
	}
	if err := c.checkMinimums(); err != nil {
		return err
	}
	if c.AcquireInterval >= c.LeaseTTL {
		return fmt.Errorf("worker: Config.AcquireInterval (%s) must be shorter than LeaseTTL (%s)", c.AcquireInterval, c.LeaseTTL)
	}
	if err := c.Retry.validate("Retry"); err != nil {
		return err
	}
	for name, p := range c.RetryByDestination {
		if err := p.over(c.Retry).validate(fmt.Sprintf("RetryByDestination[%q]", name)); err != nil {
			return err
		}
	}
	return nil
}

// MinLeaseTTL and MinInterval are the least LeaseTTL and the least
// AcquireInterval, SweepInterval and Maintenance.Interval: below them a
// lease is lost before it can be renewed over a network round trip and a
// GC pause, and the loops spin (a trial's nanoseconds kept a core busy,
// and /readyz never turned ready).
const (
	MinLeaseTTL = 500 * time.Millisecond
	MinInterval = 10 * time.Millisecond
)

// MaxCount bounds BatchSize, PerKeyBatch and Maintenance.BatchSize: they go
// to PostgreSQL as integers (int4).
const MaxCount = math.MaxInt32

func (c *Config) checkMinimums() error {
	if c.LeaseTTL < MinLeaseTTL {
		return fmt.Errorf("worker: Config.LeaseTTL (%s) is below %s (MinLeaseTTL)", c.LeaseTTL, MinLeaseTTL)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"AcquireInterval", c.AcquireInterval}, {"SweepInterval", c.SweepInterval}, {"Maintenance.Interval", c.Maintenance.Interval}} {
		if f.v < MinInterval {
			return fmt.Errorf("worker: Config.%s (%s) is below %s (MinInterval)", f.name, f.v, MinInterval)
		}
	}
	return nil
}

func (c *Config) retryFor(destination string) RetryPolicy {
	if p, ok := c.RetryByDestination[destination]; ok {
		return p.over(c.Retry)
	}
	return c.Retry
}
