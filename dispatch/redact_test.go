package dispatch_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
)

// A destination URL may carry credentials (user:password, a token in the
// path or the query). The errors a Result carries are stored in last_error
// and attempt rows and shown by the CLI, so they must not contain them.
func TestHTTPErrorsDoNotCarryURLCredentials(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close() // nothing listens there now: connection refused

	secrets := []string{"pAssw0rd", "PathT0ken", "QueryT0ken"}
	for _, raw := range []string{
		"http://hook:pAssw0rd@" + closed + "/services/PathT0ken?token=QueryT0ken",
		"http://" + closed + "/hooks/PathT0ken",
	} {
		d, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: raw, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k", Payload: []byte("{}")})
		if res.Err == nil || res.Outcome != dispatch.Retry {
			t.Fatalf("want a retried connection error, got %+v", res)
		}
		msg := res.Err.Error()
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Fatalf("error %q contains the URL's credential %q", msg, s)
			}
		}
		if !strings.Contains(msg, closed) || !strings.Contains(msg, "connection refused") {
			t.Fatalf("error %q should still name the host and the cause", msg)
		}
	}
	// A URL refused by the constructor is not echoed either.
	_, err = dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "ftp://u:pAssw0rd@host/PathT0ken?x=QueryT0ken"})
	if err == nil {
		t.Fatal("ftp URL accepted")
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q contains %q", err, s)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://api.example.com":                      "https://api.example.com",
		"https://api.example.com/":                     "https://api.example.com/",
		"https://api.example.com/v1/hook?token=abc":    "https://api.example.com/...",
		"https://user:pw@api.example.com:8443/x/y":     "https://xxxxx@api.example.com:8443/...",
		"https://TOKEN@api.example.com":                "https://xxxxx@api.example.com",
		"http://127.0.0.1:9/services/T0/B0/XXXXXXXXXX": "http://127.0.0.1:9/...",
	} {
		if got := dispatch.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
