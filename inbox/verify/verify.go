// Package verify checks webhook signatures the way each provider signs them,
// over the raw request bytes, in constant time, with the provider's timestamp
// tolerance in both directions (the edge counts as inside), and takes the
// provider's stable event id.
//
// A Verifier accepts several secrets (rotation) and several signatures in
// one header where the provider sends them. Every provider's event-id rule is
// in the doc of its constructor.
package verify

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Meta is what a verified request says about its event.
type Meta struct {
	// ID is the provider's stable event id; empty when it sent none (the
	// receiver then derives one, best-effort).
	ID string
	// Type is the event type, when the provider says it.
	Type string
	// Timestamp is the signed (or sent) time of the delivery, if any.
	Timestamp time.Time
	// Subject names what the event is about, for the best-effort id.
	Subject string
}

// Verifier authenticates one provider's requests.
type Verifier interface {
	// Verify checks r's signature over body (the raw bytes) at time now and
	// returns the event's metadata. Errors wrap ErrSignature, ErrTimestamp
	// or ErrMalformed.
	Verify(r *http.Request, body []byte, now time.Time) (Meta, error)
}

var (
	// ErrSignature: the signature is missing or matches no secret.
	ErrSignature = errors.New("invalid signature")
	// ErrTimestamp: the signed time is outside the tolerance (stale or in
	// the future), or missing where the provider signs one.
	ErrTimestamp = errors.New("timestamp outside tolerance")
	// ErrMalformed: a signature header or a timestamp cannot be parsed.
	ErrMalformed = errors.New("malformed request")
	// ErrPayload: the signature is valid but the payload is not what the
	// provider sends (not JSON where the event id lives in it). The sender
	// really sent it, so retrying cannot help: the receiver answers 422.
	ErrPayload = errors.New("malformed payload")
)

// Func adapts a function to Verifier.
type Func func(r *http.Request, body []byte, now time.Time) (Meta, error)

// Verify calls f.
func (f Func) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	return f(r, body, now)
}

// within checks ts against now with a tolerance that is inclusive at the edge.
func within(ts, now time.Time, tolerance time.Duration) error {
	d := now.Sub(ts)
	if d > tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrTimestamp, d.Round(time.Second), tolerance)
	}
	if -d > tolerance {
		return fmt.Errorf("%w: signed %s in the future, tolerance %s", ErrTimestamp, (-d).Round(time.Second), tolerance)
	}
	return nil
}

// anyEqual reports whether any candidate equals any expected MAC, comparing
// in constant time.
func anyEqual(expected, candidates [][]byte) bool {
	ok := 0
	for _, e := range expected {
		for _, c := range candidates {
			if hmac.Equal(e, c) {
				ok = 1
			}
		}
	}
	return ok == 1
}

func header(r *http.Request, name string) (string, error) {
	v := r.Header.Get(name)
	if v == "" {
		return "", fmt.Errorf("%w: missing %s header", ErrSignature, name)
	}
	return v, nil
}

func requireSecrets(name string, secrets []string) error {
	if len(secrets) == 0 {
		return fmt.Errorf("verify: %s needs at least one secret", name)
	}
	for _, s := range secrets {
		if s == "" {
			return fmt.Errorf("verify: %s: empty secret", name)
		}
	}
	return nil
}
