package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConfig configures a NATS JetStream destination.
type NATSConfig struct {
	// URL of the NATS server. Default nats://127.0.0.1:4222.
	URL string
	// Subject to publish on; a stream must capture it. Default "outboxd." +
	// the message type.
	Subject string
	// Timeout bounds one publish (until JetStream acknowledges). Default 5 s.
	Timeout time.Duration
}

// NATS publishes messages to JetStream with Nats-Msg-Id set to the
// idempotency key, so JetStream's duplicate window drops re-sends.
type NATS struct {
	cfg  NATSConfig
	conn *nats.Conn
	js   jetstream.JetStream
}

var _ Destination = (*NATS)(nil)

// NewNATS connects to NATS as c says. A nil c means every default. The connection
// reconnects by itself; Close ends it.
func NewNATS(c *NATSConfig) (*NATS, error) {
	var cfg NATSConfig // nil: every default
	if c != nil {
		cfg = *c
	}
	if cfg.URL == "" {
		cfg.URL = nats.DefaultURL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	conn, err := nats.Connect(cfg.URL, nats.Name("outboxd"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		// The URL may carry a token or a password: name only its host,
		// and drop the parser's copy of it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("dispatch: nats %s: %w", RedactURL(cfg.URL), err)
	}
	js, err := jetstream.New(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dispatch: jetstream: %w", err)
	}
	return &NATS{cfg: cfg, conn: conn, js: js}, nil
}

// notConnected says that no server of the URL answers, with the
// connection's last error (which names a host, never the URL's token).
func (d *NATS) notConnected(err error) error {
	why := "no server has answered yet"
	if last := d.conn.LastError(); last != nil {
		why = "last error: " + last.Error()
	}
	return fmt.Errorf("not connected to NATS %s (%s; %s): %w", RedactURL(d.cfg.URL), strings.ToLower(d.conn.Status().String()), why, err)
}

// Close closes the connection.
func (d *NATS) Close() { d.conn.Close() }

// Deliver publishes msg.Payload and waits for JetStream's acknowledgement.
// Every failure is retried: a missing stream or an unreachable server is a
// state that an operator fixes, not a property of the message.
func (d *NATS) Deliver(ctx context.Context, msg Message) Result {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	subject := d.cfg.Subject
	if subject == "" {
		subject = "outboxd." + msg.Type
	}
	m := nats.NewMsg(subject)
	m.Data = msg.Payload
	for k, vs := range msg.Headers {
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	if _, err := d.js.PublishMsg(ctx, m, jetstream.WithMsgID(msg.IdempotencyKey)); err != nil {
		switch {
		case !d.conn.IsConnected():
			// Before the first connection the client fails the publish on
			// its headers check: "headers not supported by this server",
			// which an operator read as the server's fault.
			err = d.notConnected(err)
		case errors.Is(err, jetstream.ErrNoStreamResponse):
			err = fmt.Errorf("no stream captures subject %s: %w", subject, err)
		}
		return Result{Outcome: Retry, Err: err}
	}
	return Result{Outcome: Delivered}
}
