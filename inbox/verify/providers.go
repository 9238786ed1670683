package verify

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1; we verify what it sends
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
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
// body's "id" (evt_...); type: the body's "type".
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
	ts := time.Unix(secs, 0)
	if err := within(ts, now, v.tolerance); err != nil {
		return Meta{}, err
	}
	if !anyEqual(macs(sha256.New, v.secrets, []byte(tsText), []byte{'.'}, body), sigs) {
		return Meta{}, fmt.Errorf("%w: no v1 signature matches", ErrSignature)
	}
	m, err := bodyFields(body)
	if err != nil {
		return Meta{}, err
	}
	return Meta{ID: str(m, "id"), Type: str(m, "type"), Timestamp: ts}, nil
}

type github struct{ secrets []string }

// GitHub verifies X-Hub-Signature-256: "sha256=<hex HMAC-SHA256(body)>"; no
// timestamp. Event id: X-GitHub-Delivery (the same on redelivery); type:
// X-GitHub-Event.
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
	return Meta{ID: r.Header.Get("X-GitHub-Delivery"), Type: r.Header.Get("X-GitHub-Event")}, nil
}

type slack struct {
	secrets   []string
	tolerance time.Duration
}

// Slack verifies X-Slack-Signature: "v0=<hex HMAC-SHA256("v0:ts:body")>"
// with X-Slack-Request-Timestamp, 300 s tolerance. Event id: the body's
// "event_id" (Events API; retries add X-Slack-Retry-Num); type: the body's
// "type". Form-encoded bodies (slash commands) carry no id.
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
		return Meta{}, fmt.Errorf("%w: X-Slack-Request-Timestamp %q", ErrMalformed, tsText)
	}
	ts := time.Unix(secs, 0)
	if err := within(ts, now, v.tolerance); err != nil {
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
		meta.ID, meta.Type = str(m, "event_id"), str(m, "type")
	}
	return meta, nil
}

type shopify struct{ secrets []string }

// Shopify verifies X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body.
// Event id: X-Shopify-Webhook-Id (older: X-Shopify-Event-Id); type:
// X-Shopify-Topic; timestamp: X-Shopify-Triggered-At (not signed, so not
// enforced).
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
	meta := Meta{ID: id, Type: r.Header.Get("X-Shopify-Topic")}
	if t, err := time.Parse(time.RFC3339Nano, r.Header.Get("X-Shopify-Triggered-At")); err == nil {
		meta.Timestamp = t
	}
	return meta, nil
}

type twilio struct {
	tokens    []string
	publicURL string
}

// Twilio verifies X-Twilio-Signature: base64 HMAC-SHA1 (key: the auth
// token) of the full request URL followed, for form bodies, by every
// parameter's name and value sorted by name. A JSON body is bound instead by
// the bodySHA256 query parameter (hex SHA-256 of the body). publicURL is the
// URL Twilio calls, scheme and host included, when a proxy rewrites it ("":
// rebuilt from the request). Event id: MessageSid, else CallSid.
func Twilio(publicURL string, authTokens ...string) (Verifier, error) {
	if err := requireSecrets("twilio", authTokens); err != nil {
		return nil, err
	}
	return &twilio{tokens: authTokens, publicURL: publicURL}, nil
}

func (v *twilio) Verify(r *http.Request, body []byte, _ time.Time) (Meta, error) {
	h, err := header(r, "X-Twilio-Signature")
	if err != nil {
		return Meta{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: X-Twilio-Signature is not base64", ErrMalformed)
	}
	full := v.publicURL
	if full == "" {
		scheme := "https"
		if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
			scheme = "http"
		}
		full = scheme + "://" + r.Host + r.URL.RequestURI()
	} else if r.URL.RawQuery != "" && !strings.Contains(full, "?") {
		full += "?" + r.URL.RawQuery
	}
	u, err := url.Parse(full)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: request URL: %w", ErrMalformed, err)
	}
	signed := []byte(full)
	meta := Meta{}
	if bodyHash := u.Query().Get("bodySHA256"); bodyHash != "" {
		sum := sha256.Sum256(body)
		if !hmac.Equal([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(bodyHash))) {
			return Meta{}, fmt.Errorf("%w: body does not match bodySHA256", ErrSignature)
		}
		if m, err := bodyFields(body); err == nil {
			meta.ID = firstNonEmpty(str(m, "MessageSid"), str(m, "CallSid"), str(m, "Sid"))
		}
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return Meta{}, fmt.Errorf("%w: form body: %w", ErrMalformed, err)
		}
		names := make([]string, 0, len(form))
		for k := range form {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			vals := append([]string(nil), form[k]...)
			sort.Strings(vals)
			for _, val := range vals {
				signed = append(append(signed, k...), val...)
			}
		}
		meta.ID = firstNonEmpty(form.Get("MessageSid"), form.Get("CallSid"))
		meta.Type = firstNonEmpty(form.Get("MessageStatus"), form.Get("CallStatus"))
	}
	expected := make([][]byte, len(v.tokens))
	for i, tok := range v.tokens {
		m := hmac.New(sha1.New, []byte(tok))
		m.Write(signed)
		expected[i] = m.Sum(nil)
	}
	if !anyEqual(expected, [][]byte{raw}) {
		return Meta{}, fmt.Errorf("%w: X-Twilio-Signature does not match (is the URL Twilio calls %s?)", ErrSignature, full)
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
// Linear-Delivery header, else the body's webhookId; type: Linear-Event.
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
	ts := time.UnixMilli(int64(msF))
	if err := within(ts, now, v.tolerance); err != nil {
		return Meta{}, err
	}
	return Meta{ID: firstNonEmpty(r.Header.Get("Linear-Delivery"), str(m, "webhookId")), Type: r.Header.Get("Linear-Event"), Timestamp: ts}, nil
}
