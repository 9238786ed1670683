package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// stdSign signs as Standard Webhooks does, over the timestamp text as given.
func stdSign(id, ts string, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(whsec[len("whsec_"):])
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Timestamps far from now are refused however large: the difference must
// not overflow into the window (the official Standard Webhooks, Svix and
// Linear libraries refuse these too).
func TestTimestampExtremes(t *testing.T) {
	now := time.Unix(1767225600, 500_000_000)
	std := must(verify.StandardWebhooks(whsec))
	body := []byte(`{"type":"x"}`)
	cases := []struct {
		name string
		ts   int64
		ok   bool
	}{
		{"int64 max", math.MaxInt64, false},
		{"int64 min", math.MinInt64, false},
		{"300 years ahead", now.Unix() + 300*365*86400, false},
		{"milliseconds", 1767225600000, false},
		{"now", now.Unix(), true},
		{"now + tolerance", now.Add(5 * time.Minute).Unix(), true},
		{"now + tolerance + 1 s", now.Add(5*time.Minute).Unix() + 1, false},
		// now is x.5 s; like the SDKs we compare whole seconds, so a
		// request signed exactly tolerance before second x is in.
		{"now - tolerance", now.Add(-5 * time.Minute).Unix(), true},
		{"now - tolerance + 1 s", now.Add(-5*time.Minute).Unix() + 1, true},
		{"now - tolerance - 1 s", now.Add(-5*time.Minute).Unix() - 1, false},
	}
	for _, tc := range cases {
		ts := strconv.FormatInt(tc.ts, 10)
		r := req("/", map[string]string{"Webhook-Id": "msg_1", "Webhook-Timestamp": ts,
			"Webhook-Signature": stdSign("msg_1", ts, body)})
		_, err := std.Verify(r, body, now)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, verify.ErrTimestamp)) {
			t.Errorf("%s (%s): %v", tc.name, ts, err)
		}
	}
	// Linear's milliseconds: a float far beyond int64, and seconds where
	// milliseconds are expected.
	lin := must(verify.Linear("s"))
	for _, stamp := range []string{"1e300", "-1e300", "9223372036854775807", "1767225600"} {
		b := `{"webhookTimestamp":` + stamp + `}`
		r := req("/", map[string]string{"Linear-Signature": hmacHex("s", b)})
		if _, err := lin.Verify(r, []byte(b), now); !errors.Is(err, verify.ErrTimestamp) {
			t.Errorf("linear %s: %v", stamp, err)
		}
	}
}

// Svix's libraries take the unbranded webhook-* headers too.
func TestSvixUnbrandedHeaders(t *testing.T) {
	now := time.Now()
	body := []byte(`{"type":"user.created","timestamp":"2026-01-02T03:04:05Z"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	r := req("/", map[string]string{"Webhook-Id": "msg_2", "Webhook-Timestamp": ts, "Webhook-Signature": stdSign("msg_2", ts, body)})
	meta, err := must(verify.Svix(whsec)).Verify(r, body, now)
	if err != nil || meta.ID != "msg_2" || meta.Type != "user.created" || !meta.OccurredAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("unbranded: %+v %v", meta, err)
	}
	r.Header.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if _, err := must(verify.Svix(whsec)).Verify(r, body, now); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("unbranded, bad signature: %v", err)
	}
}

func twilioSig(token, signed string) string {
	m := hmac.New(sha1New(), []byte(token))
	m.Write([]byte(signed))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Twilio's validators accept the URL with or without its port, and sign
// each distinct (name, value) pair once.
func TestTwilioPortsAndRepeatedKeys(t *testing.T) {
	v := must(verify.Twilio("", "tok"))
	body := "MessageSid=SM1&MessageStatus=sent&Tag=a&Tag=a"
	params := "MessageSidSM1MessageStatussentTaga"
	cases := []struct{ received, signed string }{
		{"https://example.com/hook", "https://example.com:443/hook"},
		{"https://example.com:443/hook", "https://example.com/hook"},
		{"http://example.com/hook", "http://example.com:80/hook"},
		{"https://example.com:8443/hook?x=1", "https://example.com/hook?x=1"},
		{"https://example.com/hook", "https://example.com/hook"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodPost, tc.received, nil)
		if r.URL.Scheme == "https" {
			r.Header.Set("X-Forwarded-Proto", "https")
		}
		r.Header.Set("X-Twilio-Signature", twilioSig("tok", tc.signed+params))
		meta, err := v.Verify(r, []byte(body), time.Now())
		if err != nil || meta.ID != "SM1:sent" {
			t.Errorf("received %s, signed %s: %+v %v", tc.received, tc.signed, meta, err)
		}
	}
	// A different port than the one received is not a variant.
	r := httptest.NewRequest(http.MethodPost, "https://example.com:8443/hook", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Twilio-Signature", twilioSig("tok", "https://example.com:9443/hook"+params))
	if _, err := v.Verify(r, []byte(body), time.Now()); !errors.Is(err, verify.ErrSignature) {
		t.Errorf("other port accepted: %v", err)
	}
	// The idempotency token wins over SID and status.
	r = httptest.NewRequest(http.MethodPost, "https://example.com/hook", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("I-Twilio-Idempotency-Token", "tok-1")
	r.Header.Set("X-Twilio-Signature", twilioSig("tok", "https://example.com/hook"+params))
	if meta, err := v.Verify(r, []byte(body), time.Now()); err != nil || meta.ID != "tok-1" {
		t.Errorf("idempotency token: %+v %v", meta, err)
	}
}

// The event's own time is taken from the payload, apart from the signing
// time; an empty id in a body where the provider always sends one is a
// malformed payload.
func TestEventTimeAndEmptyID(t *testing.T) {
	now := time.Unix(1795928597, 0)
	st := must(verify.Stripe("whsec_s"))
	stripeReq := func(body string) *http.Request {
		return req("/", map[string]string{"Stripe-Signature": "t=1795928597,v1=" + hmacHex("whsec_s", "1795928597."+body)})
	}
	body := `{"id":"evt_1","type":"invoice.paid","created":1795000000}`
	meta, err := st.Verify(stripeReq(body), []byte(body), now)
	if err != nil || !meta.OccurredAt.Equal(time.Unix(1795000000, 0)) || !meta.Timestamp.Equal(now) {
		t.Fatalf("stripe: %+v %v", meta, err)
	}
	for _, bad := range []string{`{"id":"","type":"x"}`, `{"type":"x"}`, `{"id":7}`} {
		if _, err := st.Verify(stripeReq(bad), []byte(bad), now); !errors.Is(err, verify.ErrPayload) {
			t.Errorf("stripe %s: %v", bad, err)
		}
	}
	gh := `{"action":"edited","issue":{"updated_at":"2026-11-01T10:00:00Z"}}`
	r := req("/", map[string]string{"X-Hub-Signature-256": "sha256=" + hmacHex("s", gh), "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d1"})
	if meta, err := must(verify.GitHub("s")).Verify(r, []byte(gh), now); err != nil || !meta.BodyUnique ||
		!meta.OccurredAt.Equal(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("github: %+v %v", meta, err)
	}
	lin := `{"createdAt":"2026-11-01T10:00:00.000Z","webhookTimestamp":1795928597000}`
	r = req("/", map[string]string{"Linear-Signature": hmacHex("s", lin), "Linear-Delivery": "d2"})
	if meta, err := must(verify.Linear("s")).Verify(r, []byte(lin), now); err != nil ||
		!meta.OccurredAt.Equal(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("linear: %+v %v", meta, err)
	}
}

// Item 10, on purpose (docs/receiving.md): a signature spelled in upper-case
// hex, or in base64 with non-zero padding bits, decodes to the same MAC
// and is accepted; a future timestamp beyond the tolerance is refused,
// where Stripe's and Slack's SDKs would accept it.
func TestLenientEncodingsStrictFuture(t *testing.T) {
	now := time.Unix(1795928597, 0)
	body := `{"id":"evt_1"}`
	st := must(verify.Stripe("whsec_s"))
	upper := "t=1795928597,v1=" + strings.ToUpper(hmacHex("whsec_s", "1795928597."+body))
	if _, err := st.Verify(req("/", map[string]string{"Stripe-Signature": upper}), []byte(body), now); err != nil {
		t.Fatalf("upper-case hex: %v", err)
	}
	future := "t=1795928898,v1=" + hmacHex("whsec_s", "1795928898."+body)
	if _, err := st.Verify(req("/", map[string]string{"Stripe-Signature": future}), []byte(body), now); !errors.Is(err, verify.ErrTimestamp) {
		t.Fatalf("301 s in the future: %v", err)
	}
	// A 32-byte MAC in base64 ends in one padding "=" and 2 spare bits:
	// setting them changes the text, not the bytes.
	sig := stdSign("msg_1", "1795928597", []byte(body))
	enc := sig[len("v1,"):]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, enc[len(enc)-2])
	odd := enc[:len(enc)-2] + string(alphabet[last|1]) + "="
	if odd == enc {
		odd = enc[:len(enc)-2] + string(alphabet[last|2]) + "="
	}
	h := map[string]string{"Webhook-Id": "msg_1", "Webhook-Timestamp": "1795928597", "Webhook-Signature": "v1," + odd}
	if _, err := must(verify.StandardWebhooks(whsec)).Verify(req("/", h), []byte(body), now); err != nil {
		t.Fatalf("non-canonical base64 %s for %s: %v", odd, enc, err)
	}
}
