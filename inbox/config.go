package inbox

import (
	"fmt"
	"time"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// DefaultTTL is how long an event id counts as seen: the longest common
// provider retry window (about 72 h) plus a day of margin.
const DefaultTTL = 72*time.Hour + 24*time.Hour

// Config configures an Inbox. The zero value is ready to use.
type Config struct {
	// Schema holds the inbox tables. Default "outboxd".
	Schema string
	// TTL is the dedupe window for sources without an entry in SourceTTL.
	// Default DefaultTTL (96 h).
	TTL time.Duration
	// SourceTTL overrides TTL per source (here and in the two maps below,
	// NewReceiver logs a warning for a key that names none of its sources). Pick each source's longest retry
	// window plus a margin. Default none: every source has TTL.
	SourceTTL map[string]time.Duration
	// RedactHeaders names extra headers that must never be stored. Never
	// stored in any case: Authorization, Proxy-Authorization, Cookie,
	// Set-Cookie, X-Api-Key, X-Auth-Token, the signature header of a
	// verify.HMAC source, and every header whose name contains token,
	// secret, sig, key, auth, cookie, password, hmac, hash, credential or
	// session (signature headers included: with the body they make a
	// replayable request), but for I-Twilio-Idempotency-Token (an event
	// id). Default none beyond that list.
	RedactHeaders []string
	// SourceRedactHeaders names more headers not to store, per source.
	// Default none.
	SourceRedactHeaders map[string][]string
	// SourceKeepHeaders names headers a source stores although their name
	// matches one of the words above (an "X-Request-Key" that is not a
	// secret). It cannot keep the fixed list or RedactHeaders. Default
	// none.
	SourceKeepHeaders map[string][]string
}

func (c *Config) withDefaults() Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	out.Schema = dbschema.OrDefault(out.Schema)
	if out.TTL == 0 {
		out.TTL = DefaultTTL
	}
	return out
}

func (c *Config) validate() error {
	if err := dbschema.Validate(c.Schema); err != nil {
		return fmt.Errorf("inbox: Config.Schema: %w", err)
	}
	if c.TTL < 0 {
		return fmt.Errorf("inbox: Config.TTL must be positive, got %s", c.TTL)
	}
	for src, ttl := range c.SourceTTL {
		if ttl <= 0 {
			return fmt.Errorf("inbox: Config.SourceTTL[%q] must be positive, got %s", src, ttl)
		}
	}
	return nil
}
