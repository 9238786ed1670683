package verify_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

func req(target string, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func must(v verify.Verifier, err error) verify.Verifier {
	if err != nil {
		panic(err)
	}
	return v
}

// A published example: the request verifies, and every tampering fails with
// the right error.
type vector struct {
	name     string
	verifier verify.Verifier
	target   string
	headers  map[string]string
	body     string
	now      time.Time
	wantID   string
}

func (v vector) check(t *testing.T) {
	t.Helper()
	meta, err := v.verifier.Verify(req(v.target, v.headers), []byte(v.body), v.now)
	if err != nil {
		t.Fatalf("%s: published example rejected: %v", v.name, err)
	}
	if meta.ID != v.wantID {
		t.Fatalf("%s: id %q, want %q", v.name, meta.ID, v.wantID)
	}
	// One byte of body changed.
	changed := []byte(v.body)
	changed[len(changed)/2] ^= 1
	if _, err := v.verifier.Verify(req(v.target, v.headers), changed, v.now); !errors.Is(err, verify.ErrSignature) && !errors.Is(err, verify.ErrMalformed) {
		t.Fatalf("%s: changed body: %v", v.name, err)
	}
	// A trailing newline is a different body.
	if _, err := v.verifier.Verify(req(v.target, v.headers), []byte(v.body+"\n"), v.now); err == nil {
		t.Fatalf("%s: trailing newline accepted", v.name)
	}
	// Each header missing.
	for h := range v.headers {
		without := map[string]string{}
		for k, val := range v.headers {
			if k != h {
				without[k] = val
			}
		}
		if strings.Contains(strings.ToLower(h), "id") || strings.Contains(strings.ToLower(h), "delivery") || strings.Contains(strings.ToLower(h), "event") || strings.Contains(strings.ToLower(h), "topic") {
			continue // identity headers are not part of every scheme's signature
		}
		if _, err := v.verifier.Verify(req(v.target, without), []byte(v.body), v.now); err == nil {
			t.Fatalf("%s: accepted without %s", v.name, h)
		}
	}
}

// Standard Webhooks' published vector, as used in Svix's own library tests
// (svix-webhooks php/tests/WebhookTest.php, testSignFunctionWorks) and in
// the Standard Webhooks spec's reference libraries.
func TestStandardWebhooksPublishedVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Unix(1614265330, 0)
	for _, tc := range []struct {
		name   string
		v      verify.Verifier
		prefix string
	}{
		{"standard-webhooks", must(verify.StandardWebhooks(secret)), "Webhook"},
		{"svix", must(verify.Svix(secret)), "Svix"},
	} {
		vector{
			name: tc.name, verifier: tc.v, target: "/hook",
			headers: map[string]string{
				tc.prefix + "-Id":        "msg_p5jXN8AQM9LWM0D4loKWxJek",
				tc.prefix + "-Timestamp": "1614265330",
				tc.prefix + "-Signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
			},
			body: `{"test": 2432232314}`, now: now, wantID: "msg_p5jXN8AQM9LWM0D4loKWxJek",
		}.check(t)
	}
	v := must(verify.StandardWebhooks(secret))
	h := map[string]string{"Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "Webhook-Timestamp": "1614265330"}
	body := []byte(`{"test": 2432232314}`)
	good := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// Several signatures in one header: any match passes.
	h["Webhook-Signature"] = "v1,bm9wZQ== v2,xyz " + good
	if _, err := v.Verify(req("/", h), body, now); err != nil {
		t.Fatalf("several signatures: %v", err)
	}
	// Tolerance: 300 s either way, edge inclusive.
	h["Webhook-Signature"] = good
	for offset, ok := range map[time.Duration]bool{300 * time.Second: true, -300 * time.Second: true, 301 * time.Second: false, -301 * time.Second: false} {
		_, err := v.Verify(req("/", h), body, now.Add(offset))
		if ok != (err == nil) || (!ok && !errors.Is(err, verify.ErrTimestamp)) {
			t.Errorf("now %+v: %v", offset, err)
		}
	}
	// Rotation: the old and the new secret both verify.
	rotated := must(verify.StandardWebhooks("whsec_"+base64.StdEncoding.EncodeToString([]byte("a brand new secret key")), secret))
	if _, err := rotated.Verify(req("/", h), body, now); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	// Wrong secret.
	wrong := must(verify.StandardWebhooks("whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret entirely"))))
	if _, err := wrong.Verify(req("/", h), body, now); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("wrong secret: %v", err)
	}
	for _, bad := range []string{"", "v1", "v1,!!!", "garbage"} {
		h["Webhook-Signature"] = bad
		if _, err := v.Verify(req("/", h), body, now); err == nil {
			t.Errorf("signature header %q accepted", bad)
		}
	}
	h["Webhook-Signature"], h["Webhook-Timestamp"] = good, "yesterday"
	if _, err := v.Verify(req("/", h), body, now); !errors.Is(err, verify.ErrMalformed) {
		t.Errorf("malformed timestamp: %v", err)
	}
}

// v1a (ed25519, "whpk_" public keys). No fixed published vector: the
// signature is made with crypto/ed25519 over the spec's signed content.
func TestStandardWebhooksEd25519(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := must(verify.StandardWebhooks("whpk_" + base64.StdEncoding.EncodeToString(pub)))
	now := time.Unix(1700000000, 0)
	body := []byte(`{"type":"contact.created"}`)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte("msg_1.1700000000."+string(body))))
	h := map[string]string{"Webhook-Id": "msg_1", "Webhook-Timestamp": "1700000000", "Webhook-Signature": "v1a," + sig}
	if _, err := v.Verify(req("/", h), body, now); err != nil {
		t.Fatal(err)
	}
	body[3] ^= 1
	if _, err := v.Verify(req("/", h), body, now); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("changed body: %v", err)
	}
	if _, err := verify.StandardWebhooks("whpk_c2hvcnQ="); err == nil {
		t.Fatal("short public key accepted")
	}
	body[3] ^= 1
	// Each v1a signature is an ed25519 check over the whole body: past
	// MaxAsymmetricSignatures the request is refused unchecked.
	junk := strings.Repeat("v1a,"+base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))+" ", verify.MaxAsymmetricSignatures-1)
	h["Webhook-Signature"] = junk + "v1a," + sig
	if _, err := v.Verify(req("/", h), body, now); err != nil {
		t.Fatalf("the good signature after %d junk ones: %v", verify.MaxAsymmetricSignatures-1, err)
	}
	h["Webhook-Signature"] = junk + "v1a,AAAA v1a," + sig
	if _, err := v.Verify(req("/", h), body, now); !errors.Is(err, verify.ErrSignature) || !strings.Contains(err.Error(), "more than 8 v1a signatures") {
		t.Fatalf("the good signature after %d junk ones: %v", verify.MaxAsymmetricSignatures, err)
	}
	// A source without whpk_ keys checks no v1a signature: any number of
	// them beside a good v1 one is no reason to refuse.
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	hv := must(verify.StandardWebhooks(secret))
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("msg_1.1700000000." + string(body)))
	h["Webhook-Signature"] = junk + junk + "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if _, err := hv.Verify(req("/", h), body, now); err != nil {
		t.Fatalf("a good v1 signature beside %d v1a ones, no whpk_ key: %v", 2*(verify.MaxAsymmetricSignatures-1), err)
	}
}

// A secret that verifies what anyone can sign is refused when the verifier
// is made: "whsec_" alone (an empty key: "whsec_"+os.Getenv of an unset
// variable), a key too short to resist guessing, a blank secret of any
// provider, and a blank one beside a good one (a rotation entry).
func TestBlankAndShortSecretsAreRefused(t *testing.T) {
	good := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("15 bytes secret"))
	for name, make := range map[string]func() (verify.Verifier, error){
		"standard whsec_ alone":     func() (verify.Verifier, error) { return verify.StandardWebhooks("whsec_") },
		"standard 15-byte key":      func() (verify.Verifier, error) { return verify.StandardWebhooks(short) },
		"svix whsec_ beside a good": func() (verify.Verifier, error) { return verify.Svix(good, "whsec_") },
		"github spaces":             func() (verify.Verifier, error) { return verify.GitHub(" ") },
		"stripe tab and newline":    func() (verify.Verifier, error) { return verify.Stripe("\t\n") },
		"slack blank rotation":      func() (verify.Verifier, error) { return verify.Slack("slack_vectors_secret", "  ") },
		"shopify blank":             func() (verify.Verifier, error) { return verify.Shopify(" ") },
		"linear blank":              func() (verify.Verifier, error) { return verify.Linear("\n") },
		"twilio blank":              func() (verify.Verifier, error) { return verify.Twilio("https://example.com/hook", " ") },
		"generic HMAC blank": func() (verify.Verifier, error) {
			return verify.HMAC(&verify.HMACConfig{Header: "X-Sig", Secrets: []string{" "}})
		},
	} {
		if _, err := make(); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "MfKQ") {
			t.Errorf("%s: the error quotes a secret: %v", name, err)
		}
	}
	if _, err := verify.StandardWebhooks("whsec_" + base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))); err != nil {
		t.Fatalf("a 16-byte key: %v", err)
	}
}

// GitHub's documented example (docs.github.com, "Validating webhook
// deliveries"): secret "It's a Secret to Everybody", payload "Hello, World!".
func TestGitHubPublishedVector(t *testing.T) {
	vector{
		name: "github", verifier: must(verify.GitHub("It's a Secret to Everybody")), target: "/hook",
		headers: map[string]string{
			"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
			"X-GitHub-Delivery":   "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		},
		body: "Hello, World!", now: time.Now(), wantID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
	}.check(t)
}

// Slack's documented example (docs.slack.dev, "Verifying requests from
// Slack").
func TestSlackPublishedVector(t *testing.T) {
	v := must(verify.Slack("8f742231b10e8888abcd99yyyzzz85a5"))
	vector{
		name: "slack", verifier: v, target: "/hook",
		headers: map[string]string{
			"X-Slack-Signature":         "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
			"X-Slack-Request-Timestamp": "1531420618",
		},
		body: "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
		now:  time.Unix(1531420618, 0), wantID: "",
	}.check(t)
	h := map[string]string{"X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", "X-Slack-Request-Timestamp": "1531420618"}
	if _, err := v.Verify(req("/", h), []byte("x"), time.Unix(1531420618+301, 0)); !errors.Is(err, verify.ErrTimestamp) {
		t.Fatalf("stale: %v", err)
	}
}

// Twilio's documented example (twilio.com/docs/usage/security, "Explore the
// algorithm yourself"): auth token 12345.
func TestTwilioPublishedVector(t *testing.T) {
	const target = "https://mycompany.com/myapp.php?foo=1&bar=2"
	body := "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212"
	vector{
		name: "twilio", verifier: must(verify.Twilio("", "12345")), target: target,
		headers: map[string]string{"X-Twilio-Signature": "GvWf1cFY/Q7PnoempGyD5oXAezc="},
		body:    body, now: time.Now(), wantID: "CA1234567890ABCDE",
	}.check(t)
	// Behind a proxy the public URL is configured.
	v := must(verify.Twilio(target, "12345"))
	r := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080/internal?foo=1&bar=2", nil)
	r.Header.Set("X-Twilio-Signature", "GvWf1cFY/Q7PnoempGyD5oXAezc=")
	if _, err := v.Verify(r, []byte(body), time.Now()); err != nil {
		t.Fatalf("configured public URL: %v", err)
	}
	// JSON bodies are bound by bodySHA256 in the URL.
	jsonBody := []byte(`{"MessageSid":"SM1","MessageStatus":"delivered"}`)
	sum := sha256.Sum256(jsonBody)
	jsonURL := "https://mycompany.com/status?bodySHA256=" + hex.EncodeToString(sum[:])
	mac := hmac.New(sha1New(), []byte("12345"))
	mac.Write([]byte(jsonURL))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	meta, err := must(verify.Twilio("", "12345")).Verify(req(jsonURL, map[string]string{"X-Twilio-Signature": sig}), jsonBody, time.Now())
	if err != nil || meta.ID != "SM1:delivered" {
		t.Fatalf("bodySHA256: %+v %v", meta, err)
	}
	if _, err := must(verify.Twilio("", "12345")).Verify(req(jsonURL, map[string]string{"X-Twilio-Signature": sig}), append(jsonBody, ' '), time.Now()); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("changed JSON body: %v", err)
	}
}

func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// Stripe publishes no fixed vector; its SDKs' tests (stripe-go
// webhook/client_test.go) sign "t.payload" with HMAC-SHA256 at test time,
// and so do we, following docs.stripe.com/webhooks#verify-manually.
func TestStripe(t *testing.T) {
	const secret = "whsec_test_secret"
	body := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded"}`
	now := time.Unix(1686089970, 0)
	header := fmt.Sprintf("t=1686089970,v1=%s,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39", hmacHex(secret, "1686089970."+body))
	vector{
		name: "stripe", verifier: must(verify.Stripe(secret)), target: "/hook",
		headers: map[string]string{"Stripe-Signature": header}, body: body, now: now, wantID: "evt_1NG8Du2eZvKYlo2CUI79vXWy",
	}.check(t)
	v := must(verify.Stripe("whsec_old", secret))
	twoV1 := fmt.Sprintf("t=1686089970,v1=%s,v1=%s", hmacHex("whsec_other", "1686089970."+body), hmacHex(secret, "1686089970."+body))
	if meta, err := v.Verify(req("/", map[string]string{"Stripe-Signature": twoV1}), []byte(body), now.Add(300*time.Second)); err != nil || meta.Type != "payment_intent.succeeded" {
		t.Fatalf("two v1, rotation, edge of tolerance: %+v %v", meta, err)
	}
	if _, err := v.Verify(req("/", map[string]string{"Stripe-Signature": twoV1}), []byte(body), now.Add(-301*time.Second)); !errors.Is(err, verify.ErrTimestamp) {
		t.Fatalf("future: %v", err)
	}
	for _, bad := range []string{"v1=abc", "t=abc,v1=00", "t=1686089970"} {
		if _, err := v.Verify(req("/", map[string]string{"Stripe-Signature": bad}), []byte(body), now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Shopify (shopify.dev, "Verify webhooks"): base64 HMAC-SHA256 of the raw
// body, computed here the way Shopify's docs show.
func TestShopify(t *testing.T) {
	body := `{"id":820982911946154508,"email":"jon@example.com"}`
	m := hmac.New(sha256.New, []byte("shpss_secret"))
	m.Write([]byte(body))
	vector{
		name: "shopify", verifier: must(verify.Shopify("shpss_secret")), target: "/hook",
		headers: map[string]string{
			"X-Shopify-Hmac-Sha256": base64.StdEncoding.EncodeToString(m.Sum(nil)),
			"X-Shopify-Webhook-Id":  "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
			"X-Shopify-Topic":       "orders/create",
		},
		body: body, now: time.Now(), wantID: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
	}.check(t)
}

// Linear (linear.app/developers/webhooks): hex HMAC-SHA256 of the body and
// webhookTimestamp within a minute.
func TestLinear(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	body := `{"action":"create","type":"Issue","webhookId":"wh_1","webhookTimestamp":1700000000123}`
	v := must(verify.Linear("lin_wh_secret"))
	vector{
		name: "linear", verifier: v, target: "/hook",
		headers: map[string]string{"Linear-Signature": hmacHex("lin_wh_secret", body), "Linear-Delivery": "d-234"},
		body:    body, now: now, wantID: "d-234",
	}.check(t)
	h := map[string]string{"Linear-Signature": hmacHex("lin_wh_secret", body)}
	if _, err := v.Verify(req("/", h), []byte(body), now.Add(61*time.Second)); !errors.Is(err, verify.ErrTimestamp) {
		t.Fatalf("stale: %v", err)
	}
	// Without Linear-Delivery there is no id (webhookId names the
	// subscription, not the event): the receiver uses the body's hash.
	if meta, err := v.Verify(req("/", h), []byte(body), now.Add(60*time.Second)); err != nil || meta.ID != "" || !meta.BodyUnique {
		t.Fatalf("edge of tolerance, no delivery header: %+v %v", meta, err)
	}
}

func TestGenericHMAC(t *testing.T) {
	body := `{"event_id":"cal_9","kind":"meeting.booked","deal":"d_1"}`
	v := must(verify.HMAC(&verify.HMACConfig{
		Header: "X-Calendar-Signature", Prefix: "sha256=", TimestampHeader: "X-Calendar-Timestamp",
		IDField: "event_id", TypeField: "kind", Secrets: []string{"cal-secret"},
	}))
	now := time.Unix(1700000000, 0)
	h := map[string]string{"X-Calendar-Signature": "sha256=" + hmacHex("cal-secret", "1700000000."+body), "X-Calendar-Timestamp": "1700000000"}
	vector{name: "generic", verifier: v, target: "/hook", headers: h, body: body, now: now, wantID: "cal_9"}.check(t)
	meta, _ := v.Verify(req("/", h), []byte(body), now)
	if meta.Type != "meeting.booked" {
		t.Fatalf("%+v", meta)
	}
	b64 := must(verify.HMAC(&verify.HMACConfig{Header: "X-Sig", Hash: verify.HashSHA512, Encoding: verify.EncodingBase64, Secrets: []string{"k"}}))
	if _, err := b64.Verify(req("/", map[string]string{"X-Sig": "bm9wZQ=="}), []byte("x"), now); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("%v", err)
	}
	for _, cfg := range []verify.HMACConfig{{Secrets: []string{"k"}}, {Header: "X"}, {Header: "X", Secrets: []string{"k"}, Hash: "md5"},
		// Every request would fail, or one setting silently win.
		{Header: "X", Secrets: []string{"k"}, TimestampHeader: "X-T", Tolerance: -time.Second},
		{Header: "X-Sig", Secrets: []string{"k"}, TimestampHeader: "x-sig"},
	} {
		if _, err := verify.HMAC(&cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// A generic source's IDField may be an integer: its digits as sent are the
// id (a float64 would make 2^53+1 the id of 2^53), the same on every
// retry. Any other non-string is a malformed payload (422), as before.
func TestGenericHMACIntegerID(t *testing.T) {
	v := must(verify.HMAC(&verify.HMACConfig{Header: "X-Sig", IDField: "event_id", Secrets: []string{"s"}}))
	for body, want := range map[string]string{
		`{"event_id":42,"kind":"k"}`:                  "42",
		`{"event_id":9007199254740993}`:               "9007199254740993",
		`{"event_id":-7}`:                             "-7",
		`{"event_id":"evt_1"}`:                        "evt_1",
		`{"event_id":4.2}`:                            "",
		`{"event_id":1e3}`:                            "",
		`{"event_id":null}`:                           "",
		`{"event_id":""}`:                             "",
		`{"event_id":true}`:                           "",
		`{"event_id":1,"event_id":12345678901234567}`: "12345678901234567",
	} {
		meta, err := v.Verify(req("/", map[string]string{"X-Sig": hmacHex("s", body)}), []byte(body), time.Now())
		switch {
		case want == "" && !errors.Is(err, verify.ErrPayload):
			t.Errorf("%s: %+v %v; want a malformed payload", body, meta, err)
		case want != "" && (err != nil || meta.ID != want):
			t.Errorf("%s: id %q, %v; want %q", body, meta.ID, err, want)
		}
	}
}

// A nil config is a config without its required fields: the error names
// the first one, as for any other.
func TestGenericHMACNilConfig(t *testing.T) {
	_, err := verify.HMAC(nil)
	if err == nil || !strings.Contains(err.Error(), "HMACConfig.Header is required") {
		t.Fatalf("HMAC(nil) = %v, want an error naming HMACConfig.Header", err)
	}
}
