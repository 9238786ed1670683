package httpheader

import (
	"net/http"
	"testing"
)

// The names operations.md lists are redacted, whatever their case; others
// are shown, and the header given is not modified.
func TestRedacted(t *testing.T) {
	h := http.Header{}
	secret := []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Client-Secret", "X-Auth-Token",
		"X-Hub-Signature-256", "X-Api-Key", "api_key", "Apikey", "X-Amz-Access-Key", "X-Private-Key",
		"Ocp-Apim-Subscription-Key", "X-Functions-Key", "X-Password", "X-Credential", "X-Session-Id"}
	shown := []string{"Content-Type", "X-Trace", "X-Request-Id", "Idempotency-Key"}
	for _, k := range append(append([]string{}, secret...), shown...) {
		h[k] = []string{"v-" + k}
	}
	out := Redacted(h)
	for _, k := range secret {
		if got := out[k]; len(got) != 1 || got[0] != "[redacted]" {
			t.Errorf("%s: %v", k, got)
		}
	}
	for _, k := range shown {
		if got := out[k]; len(got) != 1 || got[0] != "v-"+k {
			t.Errorf("%s: %v", k, got)
		}
	}
	if h["Authorization"][0] != "v-Authorization" {
		t.Error("the header given was modified")
	}
}
