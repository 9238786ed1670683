package main

import (
	"strings"
	"testing"
)

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	sw := []string{"--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"--header", "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek", "--header", "webhook-timestamp: 1614265330",
		"--header", "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
	// The file ends in a newline, as an editor or echo writes it.
	secretFile := writeFile(t, "github.secret", "It's a Secret to Everybody\n")
	slackBody := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	for _, tc := range []struct {
		name string
		body string
		args []string
		code int
		out  string
	}{
		{"standard webhooks", `{"test": 2432232314}`, append([]string{"--provider", "standard-webhooks", "--now", "1614265330"}, sw...), 0, "valid"},
		{"stale", `{"test": 2432232314}`, append([]string{"--provider", "standard-webhooks", "--now", "1614265931"}, sw...), 1, "invalid: timestamp outside tolerance"},
		{"wider tolerance", `{"test": 2432232314}`, append([]string{"--provider", "standard-webhooks", "--now", "1614265931", "--tolerance", "15m"}, sw...), 0, "valid"},
		{"changed body", `{"test": 2432232315}`, append([]string{"--provider", "standard-webhooks", "--now", "1614265330"}, sw...), 1, "invalid: invalid signature"},
		{"trailing newline", "{\"test\": 2432232314}\n", append([]string{"--provider", "standard-webhooks", "--now", "1614265330"}, sw...), 1, "invalid"},
		{"svix", `{"test": 2432232314}`, []string{"--provider", "svix", "--now", "1614265330", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"--header", "svix-id: msg_p5jXN8AQM9LWM0D4loKWxJek", "--header", "svix-timestamp: 1614265330",
			"--header", "svix-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, 0, "valid"},
		{"github", "Hello, World!", []string{"--provider", "github", "--secret", "It's a Secret to Everybody",
			"--header", "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, 0, "valid"},
		{"github wrong secret", "Hello, World!", []string{"--provider", "github", "--secret", "guess",
			"--header", "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, 1, "invalid"},
		{"slack", slackBody, []string{"--provider", "slack", "--secret", "8f742231b10e8888abcd99yyyzzz85a5", "--now", "1531420618",
			"--header", "X-Slack-Signature: v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
			"--header", "X-Slack-Request-Timestamp: 1531420618"}, 0, "valid"},
		{"twilio", "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212",
			[]string{"--provider", "twilio", "--secret", "12345", "--url", "https://mycompany.com/myapp.php?foo=1&bar=2",
				"--header", "X-Twilio-Signature: GvWf1cFY/Q7PnoempGyD5oXAezc="}, 0, "valid"},
		{"missing header", "x", []string{"--provider", "github", "--secret", "s"}, 1, "invalid: invalid signature: missing X-Hub-Signature-256"},
		{"unknown provider", "x", []string{"--provider", "carrier-pigeon", "--secret", "s"}, 2, ""},
		{"no secret", "x", []string{"--provider", "github"}, 2, ""},
		{"bad header flag", "x", []string{"--provider", "github", "--secret", "s", "--header", "nocolon"}, 2, ""},
		{"tolerance on github", "x", []string{"--provider", "github", "--secret", "s", "--tolerance", "1m"}, 2, ""},
		{"secret from env", "Hello, World!", []string{"--provider", "github", "--secret-env", "GH_SECRET",
			"--header", "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, 0, "valid"},
		{"secret from file", "Hello, World!", []string{"--provider", "github", "--secret-file", secretFile,
			"--header", "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, 0, "valid"},
	} {
		r := outboxdIn(t, []string{"GH_SECRET=It's a Secret to Everybody"}, tc.body, append([]string{"verify"}, tc.args...)...)
		if r.code != tc.code || !strings.HasPrefix(r.stdout, tc.out) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.name, r.code, r.stdout, r.stderr, tc.code, tc.out)
		}
	}
}

// The secret's sources are exclusive, and their errors name the source,
// never the secret.
func TestVerifySecretSources(t *testing.T) {
	t.Parallel()
	empty := writeFile(t, "empty", "")
	env := []string{"VERIFY_SECRET=" + envSecret, "EMPTY_SECRET=", "BAD_WHSEC=whsec_Zm9v!!" + envSecret}
	for _, tc := range []struct {
		args  []string
		first string
	}{
		{[]string{"--secret-env", "NO_SUCH_VAR_X"}, "outboxd verify: --secret-env NO_SUCH_VAR_X: the variable is not set or empty"},
		{[]string{"--secret-env", "EMPTY_SECRET"}, "outboxd verify: --secret-env EMPTY_SECRET: the variable is not set or empty"},
		{[]string{"--secret-file", "/no/such/file"}, "outboxd verify: --secret-file /no/such/file: no such file or directory"},
		{[]string{"--secret-file", empty}, "outboxd verify: --secret-file " + empty + ": the file is empty"},
		{[]string{"--secret-env", "VERIFY_SECRET", "--secret", "s"}, "outboxd verify: give one of --secret, --secret-env and --secret-file"},
		{[]string{"--provider", "standard-webhooks", "--secret-env", "BAD_WHSEC"}, "outboxd verify: standard-webhooks: a whsec_ secret must be base64: illegal base64 data at input byte 4"},
	} {
		r := outboxdIn(t, env, "x", append([]string{"verify", "--provider", "github"}, tc.args...)...)
		if r.code != 2 || firstLine(r.stderr) != tc.first {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.first)
		}
		noSecrets(t, "verify", r.stdout, r.stderr)
	}
}
