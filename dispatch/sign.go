package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signer signs outgoing requests the Standard Webhooks way: the signature is
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)) with
// key the base64-decoded part of a "whsec_" secret. The timestamp is the
// attempt's, so every attempt is signed anew.
type Signer struct {
	key []byte
}

// NewSigner parses a "whsec_" secret (the prefix is optional).
func NewSigner(secret string) (*Signer, error) {
	raw := strings.TrimPrefix(secret, "whsec_")
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("dispatch: secret is not a whsec_ base64 secret: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("dispatch: secret too short: %d bytes, want at least 16", len(key))
	}
	return &Signer{key: key}, nil
}

// Sign returns the webhook-signature value for one attempt.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
