package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/outboxd/outboxd/internal/httpheader"
)

// HTTPConfig configures an HTTP destination.
type HTTPConfig struct {
	// URL receives a POST of each message's payload. Required.
	URL string
	// Secret, a Standard Webhooks "whsec_" secret, signs each attempt
	// (webhook-signature). Default "": requests are not signed.
	Secret string
	// Headers are added to every request (Authorization, Content-Type...).
	// NewHTTP refuses those every request sets itself (Idempotency-Key,
	// Webhook-Id, Webhook-Timestamp, Host, Content-Length,
	// Transfer-Encoding, Trailer; Webhook-Signature with a Secret): a
	// value given would be replaced; a name that is not a token, a value
	// with a control character, and headers taking more than 64 KiB as
	// sent (servers answer 431).
	// Default: none but Content-Type: application/json.
	Headers http.Header
	// Timeout bounds one attempt. Default 10 s.
	Timeout time.Duration
	// MaxConcurrency bounds requests in flight to this destination. Default 16.
	MaxConcurrency int
	// Rate limits requests per second to the destination, over every
	// dispatcher that serves it: a worker.Dispatcher tells each its share
	// (Shared), Rate/n with n of them live (a provider's limit held with
	// N replicas, where each sent Rate). Until then, or outside a
	// Dispatcher, the whole Rate. Default 0: unlimited.
	Rate float64
	// Burst is the rate limiter's bucket size, shared as Rate is (at
	// least 1 each). Default 1 (used only when Rate is set).
	Burst int
	// MaxResponseBody is how much of a response body is kept for operators.
	// Default 1 KiB.
	MaxResponseBody int
	// Client sends the requests. Default: a client with keep-alive that does
	// not follow redirects.
	Client *http.Client
}

// HTTP posts messages to a URL.
//
// Every request carries Idempotency-Key and webhook-id (both the message's
// idempotency key), webhook-timestamp and, with a secret, webhook-signature,
// signed afresh on each attempt.
type HTTP struct {
	cfg     HTTPConfig
	signer  *Signer
	sem     chan struct{}
	limiter *rate.Limiter
	now     func() time.Time
}

var (
	_ Destination = (*HTTP)(nil)
	_ Concurrent  = (*HTTP)(nil)
)

// NewHTTP returns an HTTP destination configured by c. c.URL is required: a
// nil c or an empty URL is an error naming the field.
func NewHTTP(c *HTTPConfig) (*HTTP, error) {
	if c == nil || c.URL == "" {
		return nil, errors.New("dispatch: HTTPConfig.URL is required")
	}
	cfg := *c // defaults are filled in a copy: the caller's value is left as given
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dispatch: HTTPConfig.URL %q: want an http or https URL", RedactURL(cfg.URL))
	}
	for name := range cfg.Headers {
		if set := httpheader.SetByHTTP(name, cfg.Secret != ""); set != "" {
			return nil, fmt.Errorf("dispatch: HTTPConfig.Headers: %s", set)
		}
	}
	if bad := httpheader.CheckConfig(cfg.Headers); bad != "" {
		return nil, fmt.Errorf("dispatch: HTTPConfig.Headers: %s", bad)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = 16
	}
	if cfg.MaxResponseBody == 0 {
		cfg.MaxResponseBody = 1024
	}
	if cfg.Timeout < 0 || cfg.MaxConcurrency < 0 || cfg.Rate < 0 || cfg.Burst < 0 {
		return nil, errors.New("dispatch: HTTPConfig: Timeout, MaxConcurrency, Rate and Burst must not be negative")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: cfg.MaxConcurrency,
				IdleConnTimeout:     90 * time.Second,
			},
			// A redirect is the destination's configuration problem; a
			// POST must not silently turn into a GET elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	d := &HTTP{cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrency), now: time.Now}
	if cfg.Secret != "" {
		if d.signer, err = NewSigner(cfg.Secret); err != nil {
			return nil, err
		}
	}
	if cfg.Rate > 0 {
		burst := cfg.Burst
		if burst == 0 {
			burst = 1
		}
		d.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	return d, nil
}

// ShareAmong takes a 1/n share of Rate and Burst (Shared).
func (d *HTTP) ShareAmong(n int) {
	if d.limiter == nil || n < 1 {
		return
	}
	burst := max(d.cfg.Burst, 1)
	d.limiter.SetLimit(rate.Limit(d.cfg.Rate / float64(n)))
	d.limiter.SetBurst(max(burst/n, 1))
}

// Rate is the requests per second this HTTP sends at most now: its share
// of HTTPConfig.Rate (ShareAmong); 0 without a limit.
func (d *HTTP) Rate() float64 {
	if d.limiter == nil {
		return 0
	}
	return float64(d.limiter.Limit())
}

// Concurrency is MaxConcurrency: the requests in flight Deliver allows.
func (d *HTTP) Concurrency() int { return cap(d.sem) }

// Deliver posts msg.Payload and classifies the answer.
func (d *HTTP) Deliver(ctx context.Context, msg Message) Result {
	if bad := httpheader.Check(msg.Headers); bad != "" {
		// net/http would refuse it on every attempt (Enqueue refuses such
		// headers; a row written otherwise still gets here).
		return Result{Outcome: Dead, Err: errors.New(bad + ": it cannot be sent over HTTP")}
	}
	select {
	case d.sem <- struct{}{}:
		defer func() { <-d.sem }()
	case <-ctx.Done():
		return Result{Outcome: Retry, Err: ctx.Err()}
	}
	if d.limiter != nil {
		if err := d.limiter.Wait(ctx); err != nil {
			return Result{Outcome: Retry, Err: fmt.Errorf("rate limit: %w", err)}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(msg.Payload))
	if err != nil {
		return Result{Outcome: Dead, Err: err}
	}
	req.Header = make(http.Header, len(msg.Headers)+len(d.cfg.Headers)+5)
	for k, vs := range msg.Headers {
		// Under the canonical name whatever case the map was written in,
		// so that ours below replace theirs: two differently cased
		// Idempotency-Key headers would reach the downstream otherwise.
		ck := http.CanonicalHeaderKey(k)
		req.Header[ck] = append(req.Header[ck], vs...)
	}
	for k, vs := range d.cfg.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	now := d.now()
	// Our headers' values share one array (keys already canonical): a
	// drain sends tens of thousands of these a second, and each slice was
	// an allocation of its own.
	ours := [5]string{"application/json", msg.IdempotencyKey, msg.IdempotencyKey, strconv.FormatInt(now.Unix(), 10)}
	vals := ours[:]
	if req.Header.Get("Content-Type") == "" {
		req.Header["Content-Type"] = vals[0:1:1]
	}
	req.Header["Idempotency-Key"] = vals[1:2:2]
	req.Header["Webhook-Id"] = vals[2:3:3]
	req.Header["Webhook-Timestamp"] = vals[3:4:4]
	if d.signer != nil {
		vals[4] = d.signer.Sign(msg.IdempotencyKey, now, msg.Payload)
		req.Header["Webhook-Signature"] = vals[4:5:5]
	}

	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		// The client's error quotes the URL, credentials and all, and
		// ends up in last_error and the attempt rows.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = RedactURL(ue.URL)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("timeout after %s: %w", d.cfg.Timeout, err)
		}
		return Result{Outcome: Retry, Err: err}
	}
	defer resp.Body.Close()
	var body []byte
	// Most successes have no body (net/http then gives NoBody): nothing to
	// read or keep. A Client whose transport builds responses by hand
	// still has its body read.
	if resp.Body != http.NoBody {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, int64(d.cfg.MaxResponseBody)))
		// Drain a little more so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	}

	res := Result{Outcome: ClassifyStatus(resp.StatusCode), StatusCode: resp.StatusCode, Body: body}
	if res.Outcome != Delivered {
		res.Err = fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return res
}

// RedactURL returns raw without what may be a credential: the user info
// becomes "xxxxx" and a path or query becomes "/...", leaving the scheme and
// host, which are what an operator needs to tell a connection problem. A URL
// that does not parse is replaced entirely.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += "xxxxx@"
	}
	out += u.Host
	switch {
	case (u.Path == "" || u.Path == "/") && u.RawQuery == "" && !u.ForceQuery:
		out += u.Path
	default:
		out += "/..."
	}
	return out
}
