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

// The headers every attempt sets itself are named whatever their case;
// others pass.
func TestSetBySender(t *testing.T) {
	for _, name := range []string{"Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY", "webhook-signature", "Host", "content-length", "Nats-Msg-Id"} {
		if got := httpheader.SetBySender(map[string][]string{name: {"x"}}); got == "" {
			t.Errorf("%s passed", name)
		}
	}
	if got := httpheader.SetBySender(map[string][]string{"Idempotency-Key": {"x"}}); got != "header Idempotency-Key is set on every attempt from the message's idempotency key: set IdempotencyKey (outboxd send --idempotency-key); a message cannot set it" {
		t.Errorf("message: %s", got)
	}
	if got := httpheader.SetBySender(map[string][]string{"X-Request-Id": {"x"}, "Content-Type": {"text/plain"}}); got != "" {
		t.Errorf("ordinary headers refused: %s", got)
	}
}
