package verify_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

// sdkVector is a request judged by a provider's official SDK
// (testdata/sdk/generate.mjs wrote them; make test needs no Node).
type sdkVector struct {
	Provider string            `json:"provider"`
	Name     string            `json:"name"`
	Secret   string            `json:"secret"`
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Now      int64             `json:"now"`
	SDKValid bool              `json:"sdk_valid"`
}

// Where we differ from the SDKs on purpose; docs/receiving.md, "Where we
// differ from the official SDKs", gives the reasons.
var sdkDeviations = map[string]string{
	"stripe/future by 1 s":         "we refuse timestamps beyond the tolerance in the future too",
	"stripe/300 years ahead":       "we refuse timestamps beyond the tolerance in the future too",
	"slack/future by 1 s":          "we refuse timestamps beyond the tolerance in the future too",
	"slack/milliseconds":           "we refuse timestamps beyond the tolerance in the future too",
	"stripe/upper-case hex":        "we compare the MAC's bytes, not its spelling",
	"github/upper-case hex":        "we compare the MAC's bytes, not its spelling",
	"shopify/non-canonical base64": "we compare the MAC's bytes, not its spelling",
}

// outboxd verify agrees with each provider's official SDK (Standard
// Webhooks, Svix, Stripe, Twilio, Octokit, Slack Bolt, Linear,
// shopify-api), including
// the port, repeated-key, unbranded-header and timestamp-extreme cases.
func TestAgreesWithOfficialSDKs(t *testing.T) {
	raw, err := os.ReadFile("testdata/sdk/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []sdkVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	constructors := map[string]func(secret string) (verify.Verifier, error){
		"standard-webhooks": func(s string) (verify.Verifier, error) { return verify.StandardWebhooks(s) },
		"svix":              func(s string) (verify.Verifier, error) { return verify.Svix(s) },
		"stripe":            func(s string) (verify.Verifier, error) { return verify.Stripe(s) },
		"twilio":            func(s string) (verify.Verifier, error) { return verify.Twilio("", s) },
		"github":            func(s string) (verify.Verifier, error) { return verify.GitHub(s) },
		"slack":             func(s string) (verify.Verifier, error) { return verify.Slack(s) },
		"linear":            func(s string) (verify.Verifier, error) { return verify.Linear(s) },
		"shopify":           func(s string) (verify.Verifier, error) { return verify.Shopify(s) },
	}
	seen := map[string]bool{}
	for _, v := range file.Vectors {
		key := v.Provider + "/" + v.Name
		seen[key] = true
		mk := constructors[v.Provider]
		if mk == nil {
			t.Fatalf("%s: no verifier for provider %q", key, v.Provider)
		}
		verifier, err := mk(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, v.URL, strings.NewReader(v.Body))
		for k, val := range v.Headers {
			r.Header.Set(k, val)
		}
		_, err = verifier.Verify(r, []byte(v.Body), time.Unix(v.Now, 0))
		want := v.SDKValid
		if _, differ := sdkDeviations[key]; differ {
			want = !want
		}
		if (err == nil) != want {
			t.Errorf("%s: we say valid=%v (%v), the SDK says %v, deviation listed: %v", key, err == nil, err, v.SDKValid, want != v.SDKValid)
		}
	}
	for key := range sdkDeviations {
		if !seen[key] {
			t.Errorf("deviation %s has no vector", key)
		}
	}
	if len(file.Vectors) < 40 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
}
