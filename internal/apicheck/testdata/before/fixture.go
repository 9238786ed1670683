// Package fixture is the API before a change; ../after is the same API
// with one change of each kind that apicheck must report.
package fixture

import "time"

// Mode is a closed set of values.
type Mode string

// ModeFast is unchanged; ModeSlow's value changes.
const (
	ModeFast Mode = "fast"
	ModeSlow Mode = "slow"
)

// Config loses its Retries field.
type Config struct {
	Timeout time.Duration
	Retries int `json:"retries"`
	secret  string
}

// Client gains a method.
type Client struct{ cfg Config }

// New changes its signature.
func New(cfg Config) (*Client, error) { return &Client{cfg: cfg}, nil }

// Send is unchanged.
func (c *Client) Send(body []byte) error { return nil }

// Sender is unchanged.
type Sender interface {
	Send(body []byte) error
}
