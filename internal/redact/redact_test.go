package redact

import "testing"

// Secrets hides every kind of password and token it knows, and leaves the
// rest of the text as it was.
func TestSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:pw@host/db":                                    "postgres://app:xxxxx@host/db",
		"postgres://u:S3cret@Pw99@127.0.0.1:1/x":                       "postgres://u:xxxxx@127.0.0.1:1/x",
		"nats://S3cretTok@host:4222 failed":                            "nats://xxxxx@host:4222 failed",
		`host=h password=S3cret\ Pw99 port=abc`:                        "host=h password=xxxxx port=abc",
		`host=h password='S3cret Pw99' port=abc`:                       "host=h password=xxxxx port=abc",
		"lookup host: no such host (postgres://h/db)":                  "lookup host: no such host (postgres://h/db)",
		"sent Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln, got 401": "sent Authorization: Bearer xxxxx, got 401",
		"header authorization=S3cretTok rejected":                      "header authorization=xxxxx rejected",
		"token: bearer S3cretTok;":                                     "token: bearer xxxxx;",
		"Authorization: Basic dXNlcjpwYXNzd29yZA==":                    "Authorization: Basic xxxxx",
		"token_env (bearer token)":                                     "token_env (bearer token)",
		"Authorization: environment variable X is not set":             "Authorization: environment variable X is not set",
	} {
		if got := Secrets(in); got != want {
			t.Errorf("Secrets(%q) = %q, want %q", in, got, want)
		}
	}
}
