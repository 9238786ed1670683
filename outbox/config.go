package outbox

import (
	"fmt"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// Config configures an Outbox. The zero value is ready to use.
type Config struct {
	// Schema holds the outbox tables. Default "outboxd".
	Schema string
	// Notifier, when set (and started), announces committed enqueues to
	// the dispatchers from outside the enqueueing transactions. Without
	// it, or while it is not running, Enqueue sends a NOTIFY inside the
	// caller's transaction, which PostgreSQL serialises with every other
	// notifying commit: fine for a few hundred enqueueing transactions a
	// second, a bottleneck beyond. It must be of the same Schema. Default
	// nil: notify inside the transaction.
	Notifier *Notifier
	// MaxPayload bounds a message's payload, in bytes: Enqueue refuses a
	// larger one (ErrInvalidMessage), before anything is sent. A
	// dispatcher reads a batch's payloads at once (up to its BatchSize,
	// 200 by default, per lane), so one message of hundreds of megabytes
	// holds that much of its memory per attempt. Default DefaultMaxPayload
	// (1 MiB, as the inbox's DefaultMaxBody); negative: no bound.
	MaxPayload int
}

// DefaultMaxPayload is Config.MaxPayload's default.
const DefaultMaxPayload = 1 << 20

func (c *Config) withDefaults() Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	out.Schema = dbschema.OrDefault(out.Schema)
	if out.MaxPayload == 0 {
		out.MaxPayload = DefaultMaxPayload
	}
	return out
}

func (c *Config) validate() error {
	if err := dbschema.Validate(c.Schema); err != nil {
		return fmt.Errorf("outbox: Config.Schema: %w", err)
	}
	// A Notifier of another schema would announce on a channel that this
	// schema's dispatchers do not listen to: every wake-up lost.
	if c.Notifier != nil && c.Notifier.channel != dbschema.NotifyChannel(c.Schema) {
		return fmt.Errorf("outbox: Config.Notifier announces on %s, for another schema than Config.Schema %s (give both the same Schema)",
			c.Notifier.channel, c.Schema)
	}
	return nil
}
