package verify_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

// Every signature-header parser gets garbage: no panic, and no "valid".
func FuzzSignatureHeaders(f *testing.F) {
	f.Add("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330", []byte(`{"test": 2432232314}`))
	f.Add("t=1,v1=00,v1=zz,v0=", "x", []byte("{}"))
	f.Add("sha256=", "", []byte(""))
	f.Add("v0=deadbeef", "-1", []byte("a=b&c=d"))
	f.Add("v1a,"+string(make([]byte, 90)), "9999999999999999999", []byte{0xff, 0x00})
	generic, _ := verify.HMAC(&verify.HMACConfig{Header: "X-Sig", Prefix: "sha256=", TimestampHeader: "X-Ts", IDField: "id", Secrets: []string{"k"}})
	verifiers := map[string]verify.Verifier{"generic": generic}
	for name, mk := range map[string]func() (verify.Verifier, error){
		"standard": func() (verify.Verifier, error) {
			return verify.StandardWebhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		},
		"svix":    func() (verify.Verifier, error) { return verify.Svix("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") },
		"stripe":  func() (verify.Verifier, error) { return verify.Stripe("whsec_x") },
		"github":  func() (verify.Verifier, error) { return verify.GitHub("s") },
		"slack":   func() (verify.Verifier, error) { return verify.Slack("s") },
		"shopify": func() (verify.Verifier, error) { return verify.Shopify("s") },
		"twilio":  func() (verify.Verifier, error) { return verify.Twilio("", "s") },
		"linear":  func() (verify.Verifier, error) { return verify.Linear("s") },
	} {
		v, err := mk()
		if err != nil {
			f.Fatal(err)
		}
		verifiers[name] = v
	}
	headers := []string{"Webhook-Signature", "Svix-Signature", "Stripe-Signature", "X-Hub-Signature-256",
		"X-Slack-Signature", "X-Shopify-Hmac-Sha256", "X-Twilio-Signature", "Linear-Signature", "X-Sig"}
	stamps := []string{"Webhook-Timestamp", "Svix-Timestamp", "X-Slack-Request-Timestamp", "X-Ts"}
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		r, err := http.NewRequest(http.MethodPost, "https://example.com/hook?bodySHA256="+url.QueryEscape(ts), nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Webhook-Id", "id")
		r.Header.Set("Svix-Id", "id")
		for _, h := range headers {
			r.Header.Set(h, sig)
		}
		for _, h := range stamps {
			r.Header.Set(h, ts)
		}
		for name, v := range verifiers {
			if _, err := v.Verify(r, body, time.Unix(1614265330, 0)); err == nil && name != "standard" && name != "svix" {
				t.Fatalf("%s accepted sig %q ts %q body %q", name, sig, ts, body)
			}
		}
	})
}
