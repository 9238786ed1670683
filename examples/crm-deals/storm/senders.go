package storm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/outboxd/outboxd/dispatch"
)

// sender signs requests the way each real provider does.
type sender struct {
	baseURL                  string
	forms                    *dispatch.Signer // Standard Webhooks signing is the same on both sides
	paymentsKey, calendarKey string
	client                   *http.Client
}

type response struct {
	code    int
	body    string
	latency time.Duration
}

func (s *sender) do(source string, body []byte, headers map[string]string) response {
	req, _ := http.NewRequest(http.MethodPost, s.baseURL+"/webhooks/"+source, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return response{code: 0, body: err.Error(), latency: time.Since(start)}
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(out), latency: time.Since(start)}
}

// form posts a Standard Webhooks request (lead-form provider).
func (s *sender) form(id string, body []byte, at time.Time) response {
	return s.do("forms", body, map[string]string{
		"Webhook-Id": id, "Webhook-Timestamp": strconv.FormatInt(at.Unix(), 10),
		"Webhook-Signature": s.forms.Sign(id, at, body),
	})
}

// payment posts a Stripe-format request.
func (s *sender) payment(body []byte, at time.Time, key string) response {
	ts := strconv.FormatInt(at.Unix(), 10)
	return s.do("payments", body, map[string]string{"Stripe-Signature": fmt.Sprintf("t=%s,v1=%s", ts, mac(key, ts+"."+string(body)))})
}

// calendar posts a generic-HMAC request.
func (s *sender) calendar(body []byte, at time.Time, key string) response {
	ts := strconv.FormatInt(at.Unix(), 10)
	return s.do("calendar", body, map[string]string{
		"X-Calendar-Timestamp": ts, "X-Calendar-Signature": "sha256=" + mac(key, ts+"."+string(body)),
	})
}

func mac(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}
