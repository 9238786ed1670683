package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

const verifyUsage = `usage: outboxd verify --provider NAME --secret SECRET [--header 'Name: value']... [--url URL] [--now UNIX_SECONDS] [--tolerance DURATION] < body

Checks a webhook signature the way the receiver does, over the body read
from standard input exactly as given. Prints "valid" (exit 0) or
"invalid: <reason>" (exit 1); a usage mistake exits 2.

NAME: standard-webhooks, svix, stripe, github, slack, shopify, twilio, linear.
For Standard Webhooks v1a the secret is the whpk_ public key. For Twilio,
--url is the full URL Twilio requested.

flags:`

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
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	provider := fs.String("provider", "", "provider name (required)")
	secret := fs.String("secret", "", "signing secret, or whpk_ public key (required)")
	headers := headerFlags{}
	fs.Var(headers, "header", "request header, 'Name: value' (repeatable)")
	rawURL := fs.String("url", "https://webhooks.invalid/", "the URL the sender requested (Twilio signs it)")
	now := fs.Int64("now", 0, "the time to check against, Unix seconds (default: now)")
	tolerance := fs.Duration("tolerance", 0, "timestamp tolerance (default: the provider's; Standard Webhooks and Svix only)")
	fs.Usage = func() { fmt.Fprintln(stderr, verifyUsage); fs.PrintDefaults() }
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	mk, ok := providers[*provider]
	switch {
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q (the body is read from standard input)", fs.Arg(0))
	case !ok:
		return usageErrorf("--provider %q: want one of standard-webhooks, svix, stripe, github, slack, shopify, twilio, linear", *provider)
	case *secret == "":
		return usageErrorf("--secret is required")
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

// errInvalid makes verify exit 1 after printing its own verdict.
var errInvalid = errors.New("")
