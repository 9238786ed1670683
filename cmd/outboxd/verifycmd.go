package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

const verifyUsage = `usage: outboxd verify --provider NAME (--secret-env VAR | --secret-file PATH | --secret SECRET) [--header 'Name: value']... [--url URL] [--now UNIX_SECONDS] [--tolerance DURATION] < body

Checks a webhook signature the way the receiver does, over the body read
from standard input exactly as given. Prints "valid" (exit 0) or
"invalid: <reason>" (exit 1); a usage mistake exits 2.

NAME: standard-webhooks, svix, stripe, github, slack, shopify, twilio, linear.
For Standard Webhooks v1a the secret is the whpk_ public key. For Twilio,
--url is the full URL Twilio requested. Prefer --secret-env or --secret-file:
a --secret on the command line shows in ps and in the shell's history.`

var providers = map[string]func(secret, publicURL string) (verify.Verifier, error){
	"standard-webhooks": func(s, _ string) (verify.Verifier, error) { return verify.StandardWebhooks(s) },
	"svix":              func(s, _ string) (verify.Verifier, error) { return verify.Svix(s) },
	"stripe":            func(s, _ string) (verify.Verifier, error) { return verify.Stripe(s) },
	"github":            func(s, _ string) (verify.Verifier, error) { return verify.GitHub(s) },
	"slack":             func(s, _ string) (verify.Verifier, error) { return verify.Slack(s) },
	"shopify":           func(s, _ string) (verify.Verifier, error) { return verify.Shopify(s) },
	"twilio":            func(s, u string) (verify.Verifier, error) { return verify.Twilio(u, s) },
	"linear":            func(s, _ string) (verify.Verifier, error) { return verify.Linear(s) },
}

func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("verify", verifyUsage)
	provider := fs.String("provider", "", "provider `NAME` (required)")
	secret := fs.String("secret", "", "signing `SECRET`, or whpk_ public key")
	secretEnv := fs.String("secret-env", "", "read the secret from the environment variable `VAR`")
	secretFile := fs.String("secret-file", "", "read the secret from the file at `PATH` (one trailing newline is ignored)")
	headers := headerFlags{}
	fs.Var(headers, "header", "request header, 'Name: value' (repeatable)")
	rawURL := fs.String("url", "https://webhooks.invalid/", "the URL the sender requested (Twilio signs it)")
	now := fs.Int64("now", 0, "the time to check against, Unix seconds (default: now)")
	tolerance := new(time.Duration)
	fs.Var(boundedDuration{d: tolerance}, "tolerance", "timestamp tolerance (default: the provider's; Standard Webhooks and Svix only)")
	operands, help, err := fs.parse(args, stdout)
	if help || err != nil {
		return err
	}
	mk, ok := providers[*provider]
	switch {
	case len(operands) > 0:
		return fs.usageErr(fmt.Sprintf("unexpected argument %q (the body is read from standard input)", operands[0]))
	case !ok:
		return fs.usageErr(fmt.Sprintf("--provider %q: want one of standard-webhooks, svix, stripe, github, slack, shopify, twilio, linear", *provider))
	}
	if *secret, err = readSecret(*secret, *secretEnv, *secretFile); err != nil {
		return fs.usageErr(err.Error())
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" {
		return usageErrorf("--url %q: want an absolute URL", *rawURL)
	}
	v, err := mk(*secret, *rawURL)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if *tolerance > 0 {
		t, ok := v.(interface {
			WithTolerance(time.Duration) verify.Verifier
		})
		if !ok {
			return usageErrorf("--tolerance applies to standard-webhooks and svix only")
		}
		v = t.WithTolerance(*tolerance)
	}
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	r := httptest.NewRequest(http.MethodPost, *rawURL, nil)
	r.Header = http.Header(headers)
	at := time.Now()
	if *now != 0 {
		at = time.Unix(*now, 0)
	}
	meta, err := v.Verify(r, body, at)
	if err != nil {
		fmt.Fprintf(stdout, "invalid: %v\n", err)
		return errInvalid
	}
	fmt.Fprintln(stdout, "valid")
	if meta.ID != "" {
		fmt.Fprintf(stderr, "event id: %s\n", meta.ID)
	}
	return nil
}

// readSecret returns the one secret given by --secret, --secret-env or
// --secret-file. Its errors name the source, never the secret.
func readSecret(secret, env, file string) (string, error) {
	given := 0
	for _, s := range []string{secret, env, file} {
		if s != "" {
			given++
		}
	}
	switch {
	case given == 0:
		return "", errors.New("a secret is required: --secret-env VAR, --secret-file PATH or --secret SECRET")
	case given > 1:
		return "", errors.New("give one of --secret, --secret-env and --secret-file")
	case env != "":
		if secret = os.Getenv(env); secret == "" {
			return "", fmt.Errorf("--secret-env %s: the variable is not set or empty", env)
		}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("--secret-file %s: %w", file, err)
		}
		// Editors and echo add a newline the sender never signed with.
		if secret = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"); secret == "" {
			return "", fmt.Errorf("--secret-file %s: the file is empty", file)
		}
	}
	return secret, nil
}

// errInvalid makes verify exit 1 after printing its own verdict.
var errInvalid = errors.New("")
