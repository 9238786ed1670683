package inbox_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// pfix is a receiver with one source per provider, mounted at the root of
// a real server, whose handler writes one effect row per event it runs
// for, including the body's "note" field.
type pfix struct {
	pool  *pgxpool.Pool
	inbox *inbox.Inbox
	rc    *inbox.Receiver
	srv   *httptest.Server
	reg   *prometheus.Registry
	logs  *syncbuf.Buffer
}

const (
	calSecret    = "cal-secret"
	slackSecret  = "slack-secret"
	stripeSecret = "whsec_stripe"
	twilioToken  = "twilio-token"
	ghSecret     = "gh-secret"
)

func newPfix(t *testing.T, cfg *inbox.Config, mutate func(*inbox.ReceiverConfig)) *pfix {
	t.Helper()
	ctx := context.Background()
	f := &pfix{pool: pgtest.Pool(t), reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}}
	if _, err := f.pool.Exec(ctx, `CREATE TABLE effects (source text, event_id text, note text)`); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.inbox, err = inbox.New(cfg); err != nil {
		t.Fatal(err)
	}
	metrics, err := inbox.NewMetrics(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		var body struct {
			Note string `json:"note"`
		}
		_ = json.Unmarshal(d.Body, &body)
		_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1, $2, $3)`, d.Source, d.ID, body.Note)
		return err
	}
	must := func(v verify.Verifier, err error) verify.Verifier {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	rcfg := inbox.ReceiverConfig{
		Sources: []inbox.Source{
			{Name: "calendar", Verifier: must(verify.HMAC(&verify.HMACConfig{Header: "X-Cal-Sig", Prefix: "sha256=",
				TimestampHeader: "X-Cal-Timestamp", TypeField: "kind", Secrets: []string{calSecret}})), Handle: handle},
			{Name: "slack", Verifier: must(verify.Slack(slackSecret)), Handle: handle},
			{Name: "stripe", Verifier: must(verify.Stripe(stripeSecret)), Handle: handle},
			{Name: "forms", Verifier: must(verify.StandardWebhooks(secret)), Handle: handle},
			{Name: "svix", Verifier: must(verify.Svix(secret)), Handle: handle},
			{Name: "twilio", Verifier: must(verify.Twilio("", twilioToken)), Handle: handle},
			{Name: "github", Verifier: must(verify.GitHub(ghSecret)), Handle: handle},
			{Name: "shopify", Verifier: must(verify.Shopify(ghSecret)), Handle: handle},
		},
		Metrics: metrics,
		Logger:  slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	if mutate != nil {
		mutate(&rcfg)
	}
	if f.rc, err = inbox.NewReceiver(f.pool, f.inbox, &rcfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.rc)
	t.Cleanup(f.srv.Close)
	return f
}

// send posts body to path with headers, over a real connection.
func (f *pfix) send(t *testing.T, path string, body []byte, headers map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: string(out), header: resp.Header}
}

// pstate is what an event may change.
type pstate struct{ effects, events, failures int }

func (f *pfix) state(t *testing.T) pstate {
	t.Helper()
	var s pstate
	err := f.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM effects),
		(SELECT count(*) FROM outboxd.inbox_events), (SELECT count(*) FROM outboxd.inbox_failures)`).Scan(&s.effects, &s.events, &s.failures)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// twice delivers one event twice: both answers must be code, and the
// second delivery must leave the state as the first did.
func (f *pfix) twice(t *testing.T, code int, deliver func() reply) pstate {
	t.Helper()
	first := deliver()
	after1 := f.state(t)
	second := deliver()
	after2 := f.state(t)
	if first.code != code || second.code != code {
		// The reason is in the log, not in the answer's body.
		t.Fatalf("answers %d (%s) then %d (%s), want %d twice; the receiver's log:\n%s", first.code, first.body, second.code, second.body, code, f.logs.String())
	}
	if after1.effects != after2.effects || after1.events != after2.events {
		t.Fatalf("the second delivery changed the state: %+v -> %+v", after1, after2)
	}
	return after2
}

func calHeaders(ts time.Time, body []byte) map[string]string {
	s := strconv.FormatInt(ts.Unix(), 10)
	return map[string]string{"X-Cal-Timestamp": s, "X-Cal-Sig": "sha256=" + hmacSHA256Hex(calSecret, s+"."+string(body))}
}

func slackHeaders(ts time.Time, body []byte) map[string]string {
	s := strconv.FormatInt(ts.Unix(), 10)
	return map[string]string{"X-Slack-Request-Timestamp": s, "X-Slack-Signature": "v0=" + hmacSHA256Hex(slackSecret, "v0:"+s+":"+string(body))}
}

func stripeHeaders(ts time.Time, body []byte) map[string]string {
	s := strconv.FormatInt(ts.Unix(), 10)
	return map[string]string{"Stripe-Signature": "t=" + s + ",v1=" + hmacSHA256Hex(stripeSecret, s+"."+string(body))}
}

// stdHeaders signs as Standard Webhooks; prefix "Webhook" or "Svix".
// The timestamp is signed as given, so that absurd ones can be signed too.
func stdHeaders(prefix, id, ts string, body []byte) map[string]string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	sig := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	return map[string]string{prefix + "-Id": id, prefix + "-Timestamp": ts, prefix + "-Signature": sig}
}

func twilioHeaders(signedURL string, params string) map[string]string {
	m := hmac.New(sha1.New, []byte(twilioToken))
	m.Write([]byte(signedURL + params))
	return map[string]string{"X-Twilio-Signature": base64.StdEncoding.EncodeToString(m.Sum(nil)),
		"Content-Type": "application/x-www-form-urlencoded"}
}

func githubHeaders(delivery string, body []byte) map[string]string {
	return githubEventHeaders(delivery, "issues", body)
}

func shopifyHeaders(id, topic string, body []byte) map[string]string {
	m := hmac.New(sha256.New, []byte(ghSecret))
	m.Write(body)
	return map[string]string{"X-Shopify-Hmac-Sha256": base64.StdEncoding.EncodeToString(m.Sum(nil)),
		"X-Shopify-Webhook-Id": id, "X-Shopify-Topic": topic}
}

func githubEventHeaders(delivery, event string, body []byte) map[string]string {
	return map[string]string{"X-Hub-Signature-256": "sha256=" + hmacSHA256Hex(ghSecret, string(body)),
		"X-GitHub-Delivery": delivery, "X-GitHub-Event": event}
}
