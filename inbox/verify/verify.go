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
	"strings"
	"time"
)

// Meta is what a verified request says about its event.
type Meta struct {
	// ID is the provider's stable event id; empty when it sent none (the
	// receiver then keys the event on a hash of its body, best-effort).
	ID string
	// Type is the event type, when the provider says it.
	Type string
	// Timestamp is the time the delivery was signed (or sent), if any. A
	// retry is signed afresh, so it says nothing about the event's age.
	Timestamp time.Time
	// OccurredAt is the event's own time from the payload (Stripe
	// "created", Linear "createdAt"...), zero when the provider gives none.
	// It stays the same on every retry.
	OccurredAt time.Time
	// BodyUnique is set by providers whose id comes from an unsigned header
	// (GitHub, Shopify, Twilio, Linear), while their body is itself unique
	// per event: the receiver then dedupes on the body's hash as well, so a
	// captured request replayed under a fresh id is still a duplicate.
	BodyUnique bool
	// BodyKeyType is put in that hash beside the body by providers that
	// send one body under several types: Shopify sends orders/create and
	// orders/paid with the same order. Its topic header is not signed, so a
	// captured request replayed under another topic is processed: Shopify
	// handlers must take state from the body, not from the topic alone.
	BodyKeyType string
	// Challenge is set for a provider's endpoint handshake (Slack's
	// url_verification): the receiver answers it with the challenge and
	// records nothing, since it is not an event.
	Challenge string
}

// Verifier authenticates one provider's requests.
type Verifier interface {
	// Verify checks r's signature over body (the raw bytes) at time now and
	// returns the event's metadata. Errors wrap ErrSignature, ErrTimestamp,
	// ErrMalformed or ErrPayload.
	Verify(r *http.Request, body []byte, now time.Time) (Meta, error)
}

var (
	// ErrSignature means the signature is missing or matches no secret.
	ErrSignature = errors.New("invalid signature")
	// ErrTimestamp means the signed time is outside the tolerance (stale or
	// in the future), or missing where the provider signs one.
	ErrTimestamp = errors.New("timestamp outside tolerance")
	// ErrMalformed means a signature header or a timestamp cannot be parsed.
	ErrMalformed = errors.New("malformed request")
	// ErrPayload means the signature is valid but the payload is not what
	// the provider sends (not JSON where the event id lives in it). The
	// sender really sent it, so retrying cannot help: the receiver answers
	// 422.
	ErrPayload = errors.New("malformed payload")
)

// Func adapts a function to Verifier.
type Func func(r *http.Request, body []byte, now time.Time) (Meta, error)

// Verify calls f.
func (f Func) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	return f(r, body, now)
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
		// A blank secret (an unset variable in a template) would verify
		// what anyone signs with the same blank key.
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("verify: %s: empty secret", name)
		}
	}
	return nil
}
