// Package fixture is ../before with one change of each kind that apicheck
// must report.
package fixture

import "time"

// Mode is a closed set of values.
type Mode string

// ModeFast is unchanged; ModeSlow's value changed.
const (
	ModeFast Mode = "fast"
	ModeSlow Mode = "slower"
)

// Config lost its Retries field.
type Config struct {
	Timeout time.Duration
	secret  string
}

// Client gained a method.
type Client struct{ cfg Config }

// New changed its signature.
func New(cfg *Config) (*Client, error) { return &Client{cfg: *cfg}, nil }

// Send is unchanged.
func (c *Client) Send(body []byte) error { return nil }

// Close is new.
func (c *Client) Close() error { return nil }

// Sender is unchanged.
type Sender interface {
	Send(body []byte) error
}
