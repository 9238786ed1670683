package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func macs(newHash func() hash.Hash, secrets []string, parts ...[]byte) [][]byte {
	out := make([][]byte, len(secrets))
	for i, s := range secrets {
		m := hmac.New(newHash, []byte(s))
		for _, p := range parts {
			m.Write(p)
		}
		out[i] = m.Sum(nil)
	}
	return out
}

// bodyFields decodes a JSON object body, after the signature checked out;
// a body that is not one is a malformed payload for providers whose id
// lives in it.
func bodyFields(body []byte) (map[string]any, error) {
	if !utf8.Valid(body) { // JSON is UTF-8; the decoder would paper over it
		return nil, fmt.Errorf("%w: body is not valid UTF-8", ErrPayload)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: body is not a JSON object: %w", ErrPayload, err)
	}
	return m, nil
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

type stripe struct {
	secrets   []string
	tolerance time.Duration
}

// Stripe verifies Stripe-Signature: "t=<unix>,v1=<hex HMAC-SHA256(t.body)>",
// any number of v1 entries (v0 ignored), 300 s tolerance. Event id: the
// body's "id" (evt_...), required (a body without one is a malformed
// payload); type: the body's "type"; event time: the body's "created".
func Stripe(secrets ...string) (Verifier, error) {
	if err := requireSecrets("stripe", secrets); err != nil {
		return nil, err
	}
	return &stripe{secrets: secrets, tolerance: 300 * time.Second}, nil
}

func (v *stripe) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	h, err := header(r, "Stripe-Signature")
	if err != nil {
		return Meta{}, err
	}
	var (
		tsText string
		sigs   [][]byte
	)
	for _, item := range strings.Split(h, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			tsText = val
		case "v1":
			if raw, err := hex.DecodeString(val); err == nil {
				sigs = append(sigs, raw)
			}
		}
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: Stripe-Signature has no t=<unix seconds>", ErrMalformed)
	}
	if len(sigs) == 0 {
		return Meta{}, fmt.Errorf("%w: Stripe-Signature has no v1 signature", ErrSignature)
	}
	ts, err := withinUnix(secs, time.Second, now, v.tolerance)
	if err != nil {
		return Meta{}, err
	}
	if !anyEqual(macs(sha256.New, v.secrets, []byte(tsText), []byte{'.'}, body), sigs) {
		return Meta{}, fmt.Errorf("%w: no v1 signature matches", ErrSignature)
	}
	m, err := bodyFields(body)
	if err != nil {
		return Meta{}, err
	}
	if _, ok := m["id"]; !ok {
		return Meta{}, fmt.Errorf("%w: Stripe event without \"id\"", ErrPayload)
	}
	id, err := idField(m, "id")
	if err != nil {
		return Meta{}, err
	}
	return Meta{ID: id, Type: str(m, "type"), Timestamp: ts, OccurredAt: unixField(m, "created")}, nil
}

type github struct{ secrets []string }

// GitHub verifies X-Hub-Signature-256: "sha256=<hex HMAC-SHA256(body)>"; no
// timestamp. Event id: X-GitHub-Delivery (the same on redelivery, but not
// signed, so Meta.BodyUnique); type: X-GitHub-Event; event time: the
// "updated_at" of the object the event is about (issue, pull_request...),
// else head_commit.timestamp.
func GitHub(secrets ...string) (Verifier, error) {
	if err := requireSecrets("github", secrets); err != nil {
		return nil, err
	}
	return &github{secrets: secrets}, nil
}

func (v *github) Verify(r *http.Request, body []byte, _ time.Time) (Meta, error) {
	h, err := header(r, "X-Hub-Signature-256")
	if err != nil {
		return Meta{}, err
	}
	hexSig, ok := strings.CutPrefix(h, "sha256=")
	raw, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return Meta{}, fmt.Errorf("%w: X-Hub-Signature-256 is not sha256=<hex>", ErrMalformed)
	}
	if !anyEqual(macs(sha256.New, v.secrets, body), [][]byte{raw}) {
		return Meta{}, fmt.Errorf("%w: X-Hub-Signature-256 does not match", ErrSignature)
	}
	meta := Meta{ID: r.Header.Get("X-GitHub-Delivery"), Type: r.Header.Get("X-GitHub-Event"), BodyUnique: true}
	if m, err := bodyFields(body); err == nil {
		t := timeField(obj(m, meta.Type), "updated_at")
		if t.IsZero() {
			t = timeField(obj(m, strings.TrimSuffix(meta.Type, "s")), "updated_at")
		}
		if t.IsZero() {
			t = timeField(obj(m, "head_commit"), "timestamp")
		}
		meta.OccurredAt = t
	}
	return meta, nil
}

type slack struct {
	secrets   []string
	tolerance time.Duration
}

// Slack verifies X-Slack-Signature: "v0=<hex HMAC-SHA256("v0:ts:body")>"
// with X-Slack-Request-Timestamp, 300 s tolerance. Event id: the body's
// "event_id" (Events API; retries add X-Slack-Retry-Num); type: the body's
// "type"; event time: "event_time". Form-encoded bodies (slash commands,
// interactive payloads) carry no id: the receiver keys them on the body.
func Slack(secrets ...string) (Verifier, error) {
	if err := requireSecrets("slack", secrets); err != nil {
		return nil, err
	}
	return &slack{secrets: secrets, tolerance: 300 * time.Second}, nil
}

func (v *slack) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	tsText, err := header(r, "X-Slack-Request-Timestamp")
	if err != nil {
		return Meta{}, fmt.Errorf("%w: missing X-Slack-Request-Timestamp", ErrTimestamp)
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: X-Slack-Request-Timestamp %s", ErrMalformed, quote(tsText))
	}
	ts, err := withinUnix(secs, time.Second, now, v.tolerance)
	if err != nil {
		return Meta{}, err
	}
	h, err := header(r, "X-Slack-Signature")
	if err != nil {
		return Meta{}, err
	}
	hexSig, ok := strings.CutPrefix(h, "v0=")
	raw, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return Meta{}, fmt.Errorf("%w: X-Slack-Signature is not v0=<hex>", ErrMalformed)
	}
	if !anyEqual(macs(sha256.New, v.secrets, []byte("v0:"), []byte(tsText), []byte{':'}, body), [][]byte{raw}) {
		return Meta{}, fmt.Errorf("%w: X-Slack-Signature does not match", ErrSignature)
	}
	meta := Meta{Timestamp: ts}
	if m, err := bodyFields(body); err == nil {
		if meta.ID, err = idField(m, "event_id"); err != nil {
			return Meta{}, err
		}
		meta.Type, meta.OccurredAt = str(m, "type"), unixField(m, "event_time")
		if meta.Type == "url_verification" {
			meta.Challenge = str(m, "challenge")
		}
	}
	return meta, nil
}

type shopify struct{ secrets []string }

// Shopify verifies X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body.
// Event id: X-Shopify-Webhook-Id (older: X-Shopify-Event-Id), not signed,
// so Meta.BodyUnique; type: X-Shopify-Topic; timestamp:
// X-Shopify-Triggered-At (not signed, so not enforced); event time: the
// body's "updated_at", else "created_at".
func Shopify(secrets ...string) (Verifier, error) {
	if err := requireSecrets("shopify", secrets); err != nil {
		return nil, err
	}
	return &shopify{secrets: secrets}, nil
}

func (v *shopify) Verify(r *http.Request, body []byte, _ time.Time) (Meta, error) {
	h, err := header(r, "X-Shopify-Hmac-Sha256")
	if err != nil {
		return Meta{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: X-Shopify-Hmac-Sha256 is not base64", ErrMalformed)
	}
	if !anyEqual(macs(sha256.New, v.secrets, body), [][]byte{raw}) {
		return Meta{}, fmt.Errorf("%w: X-Shopify-Hmac-Sha256 does not match", ErrSignature)
	}
	id := r.Header.Get("X-Shopify-Webhook-Id")
	if id == "" {
		id = r.Header.Get("X-Shopify-Event-Id")
	}
	topic := r.Header.Get("X-Shopify-Topic")
	meta := Meta{ID: id, Type: topic, BodyUnique: true, BodyKeyType: topic}
	if t, err := time.Parse(time.RFC3339Nano, r.Header.Get("X-Shopify-Triggered-At")); err == nil {
		meta.Timestamp = t
	}
	if m, err := bodyFields(body); err == nil {
		meta.OccurredAt = timeField(m, "updated_at")
		if meta.OccurredAt.IsZero() {
			meta.OccurredAt = timeField(m, "created_at")
		}
	}
	return meta, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

type linear struct {
	secrets   []string
	tolerance time.Duration
}

// Linear verifies Linear-Signature: hex HMAC-SHA256 of the body, and the
// body's webhookTimestamp (milliseconds) within 60 s. Event id: the
// Linear-Delivery header (else the receiver's body hash), with body dedupe;
// type: Linear-Event; event time: the body's "createdAt".
func Linear(secrets ...string) (Verifier, error) {
	if err := requireSecrets("linear", secrets); err != nil {
		return nil, err
	}
	return &linear{secrets: secrets, tolerance: 60 * time.Second}, nil
}

func (v *linear) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	h, err := header(r, "Linear-Signature")
	if err != nil {
		return Meta{}, err
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: Linear-Signature is not hex", ErrMalformed)
	}
	if !anyEqual(macs(sha256.New, v.secrets, body), [][]byte{raw}) {
		return Meta{}, fmt.Errorf("%w: Linear-Signature does not match", ErrSignature)
	}
	m, err := bodyFields(body)
	if err != nil {
		return Meta{}, err
	}
	msF, ok := m["webhookTimestamp"].(float64)
	if !ok {
		return Meta{}, fmt.Errorf("%w: body has no webhookTimestamp", ErrTimestamp)
	}
	// Clamp before converting: a float64 beyond int64 converts to an
	// unspecified value.
	ms := int64(math.MaxInt64)
	if msF < -math.MaxInt64 {
		ms = math.MinInt64
	} else if msF < math.MaxInt64 {
		ms = int64(msF)
	}
	ts, err := withinUnix(ms, time.Millisecond, now, v.tolerance)
	if err != nil {
		return Meta{}, err
	}
	// webhookId names the webhook subscription, not the event: without
	// Linear-Delivery the receiver falls back to the body's hash. The
	// header is not signed, so the body (which carries the signed
	// webhookTimestamp) also dedupes replays.
	return Meta{ID: r.Header.Get("Linear-Delivery"), Type: r.Header.Get("Linear-Event"),
		Timestamp: ts, OccurredAt: timeField(m, "createdAt"), BodyUnique: true}, nil
}
