package httpheader_test

import (
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/httpheader"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		h    map[string][]string
		want string // "" for sendable, else a part of the description
	}{
		{map[string][]string{"X-Trace": {"a\tb", ""}, "Authorization": {"Bearer é"}}, ""},
		{map[string][]string{"Bad Name": {"v"}}, `header name "Bad Name" is not a token`},
		{map[string][]string{"X-A:": {"v"}}, `header name "X-A:" is not a token`},
		// "Name: value" given as a name: the value (a token?) is not quoted.
		{map[string][]string{"Authorization: Bearer sk_live_x": {"v"}}, `header name "Authorization:"... is not a token`},
		{map[string][]string{"": {"v"}}, `header name "" is not a token`},
		{map[string][]string{"X-A\r\nInjected": {"v"}}, `header name "X-A\r\nInjected" is not a token`},
		{map[string][]string{"X-Secret": {"ok", "s3cr3t\r\nX-Injected: 1"}}, "header X-Secret: the value holds a control character"},
		{map[string][]string{"X-Del": {"a\x7fb"}}, "header X-Del: the value holds a control character"},
	} {
		got := httpheader.Check(tc.h)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("Check(%q) = %q, want %q", tc.h, got, tc.want)
		}
		if strings.Contains(got, "s3cr3t") {
			t.Errorf("Check quoted a value: %q", got)
		}
	}
	if long := httpheader.Check(map[string][]string{strings.Repeat("x ", 500): {"v"}}); len(long) > 200 {
		t.Errorf("a long bad name is quoted whole: %d bytes", len(long))
	}
}

// Idempotency-Key is named whatever its case; others pass. The HTTP
// destination's own headers are named by SetByHTTP, Webhook-Signature
// when it signs.
func TestIdempotencyKeyAndSetByHTTP(t *testing.T) {
	if httpheader.SetByHTTP("webhook-signature", true) == "" {
		t.Error("Webhook-Signature passed for a signing destination")
	}
	for _, name := range []string{"Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"} {
		if got := httpheader.CheckMessage(map[string][]string{name: {"x"}}); got == "" {
			t.Errorf("%s passed", name)
		}
	}
	if got := httpheader.CheckMessage(map[string][]string{"X-Request-Id": {"x"}, "Webhook-Signature": {"v1,x"}, "Nats-Msg-Id": {"n"}}); got != "" {
		t.Errorf("other headers refused: %s", got)
	}
	for _, name := range []string{"idempotency-key", "Webhook-Id", "webhook-timestamp", "host", "Content-Length", "transfer-encoding", "Trailer"} {
		if httpheader.SetByHTTP(name, false) == "" {
			t.Errorf("SetByHTTP(%s) passed", name)
		}
	}
	for _, name := range []string{"Webhook-Signature", "Authorization", "Content-Type", "Nats-Msg-Id"} {
		if got := httpheader.SetByHTTP(name, false); got != "" {
			t.Errorf("SetByHTTP(%s): %s", name, got)
		}
	}
}

// CheckMessage is Check plus the refusal of an Idempotency-Key, in one pass.
func TestCheckMessage(t *testing.T) {
	if got := httpheader.CheckMessage(map[string][]string{"idempotency-KEY": {"k"}}); !strings.HasPrefix(got, "header Idempotency-Key is the message's idempotency key") {
		t.Errorf("Idempotency-Key: %q", got)
	}
	if got := httpheader.CheckMessage(map[string][]string{"Bad Name": {"v"}}); got != httpheader.Check(map[string][]string{"Bad Name": {"v"}}) || got == "" {
		t.Errorf("a bad name: %q", got)
	}
	if got := httpheader.CheckMessage(map[string][]string{"Content-Type": {"application/json"}, "X-Idempotency-Keys": {"k"}}); got != "" {
		t.Errorf("ordinary headers: %q", got)
	}
	if got := httpheader.Check(map[string][]string{"Idempotency-Key": {"k"}}); got != "" {
		t.Errorf("Check (verify, config) refused Idempotency-Key: %q", got)
	}
}
