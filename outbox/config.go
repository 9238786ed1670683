package outbox

import (
	"fmt"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// Config configures an Outbox. The zero value is ready to use.
type Config struct {
	// Schema holds the outbox tables. Default "outboxd".
	Schema string
}

func (c *Config) withDefaults() Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	out.Schema = dbschema.OrDefault(out.Schema)
	return out
}

func (c *Config) validate() error {
	if err := dbschema.Validate(c.Schema); err != nil {
		return fmt.Errorf("outbox: Config.Schema: %w", err)
	}
	return nil
}
