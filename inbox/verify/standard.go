package verify

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StandardTolerance is the Standard Webhooks (and Svix) timestamp tolerance.
const StandardTolerance = 5 * time.Minute

// standard verifies Standard Webhooks: signature header with space-separated
// "v1,<base64 HMAC-SHA256(id.ts.body)>" (secrets "whsec_...") and
// "v1a,<base64 ed25519>" (public keys "whpk_...").
type standard struct {
	idHeader, tsHeader, sigHeader string
	// unbranded: also take webhook-id/-timestamp/-signature where a
	// branded header is absent, as Svix's own libraries do.
	unbranded  bool
	hmacKeys   [][]byte
	publicKeys []ed25519.PublicKey
	tolerance  time.Duration
}

// StandardWebhooks verifies the Standard Webhooks scheme. Each secret is a
// "whsec_" HMAC secret (v1) or a "whpk_" ed25519 public key (v1a). Event id:
// the webhook-id header.
func StandardWebhooks(secrets ...string) (Verifier, error) {
	v, err := newStandard("standard-webhooks", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", secrets)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Svix is StandardWebhooks under Svix's older header names (svix-id,
// svix-timestamp, svix-signature); like Svix's libraries, it falls back to
// the unbranded webhook-* header where a svix-* one is absent. Event id:
// the svix-id header, else webhook-id.
func Svix(secrets ...string) (Verifier, error) {
	v, err := newStandard("svix", "Svix-Id", "Svix-Timestamp", "Svix-Signature", secrets)
	if err != nil {
		return nil, err
	}
	v.unbranded = true
	return v, nil
}

// minKeyBytes is the shortest whsec_ key accepted.
const minKeyBytes = 16

func newStandard(name, id, ts, sig string, secrets []string) (*standard, error) {
	if err := requireSecrets(name, secrets); err != nil {
		return nil, err
	}
	v := &standard{idHeader: id, tsHeader: ts, sigHeader: sig, tolerance: StandardTolerance}
	for _, s := range secrets {
		switch {
		case strings.HasPrefix(s, "whpk_"):
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whpk_"))
			if err != nil || len(raw) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("verify: %s: a whpk_ key must be base64 of a %d-byte ed25519 public key", name, ed25519.PublicKeySize)
			}
			v.publicKeys = append(v.publicKeys, ed25519.PublicKey(raw))
		default:
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
			if err != nil {
				return nil, fmt.Errorf("verify: %s: a whsec_ secret must be base64: %w", name, err)
			}
			// "whsec_" alone decodes to an empty key, with which anyone can
			// sign; a few bytes are guessed in as many requests. The spec's
			// secrets are 24 to 64 bytes; dispatch.NewSigner wants 16.
			if len(raw) < minKeyBytes {
				return nil, fmt.Errorf("verify: %s: a whsec_ secret's key is %d bytes, want at least %d", name, len(raw), minKeyBytes)
			}
			v.hmacKeys = append(v.hmacKeys, raw)
		}
	}
	return v, nil
}

// WithTolerance returns a copy of a StandardWebhooks or Svix verifier with
// another tolerance.
func (v *standard) WithTolerance(d time.Duration) Verifier {
	c := *v
	c.tolerance = d
	return &c
}

// get reads a branded header, or for Svix its unbranded twin.
func (v *standard) get(r *http.Request, name string) (string, error) {
	if val := r.Header.Get(name); val != "" || !v.unbranded {
		return header(r, name)
	}
	return header(r, "Webhook-"+strings.TrimPrefix(name, "Svix-"))
}

// MaxAsymmetricSignatures bounds the v1a (ed25519) signatures of one
// Standard Webhooks request to a verifier with whpk_ keys (one without
// ignores them): each is checked over the whole body, so a
// header of 650 junk ones cost a trial's 1 MiB request 1.07 s of CPU
// before it was refused. A sender rotating keys sends two or three.
const MaxAsymmetricSignatures = 8

func (v *standard) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	id, err := v.get(r, v.idHeader)
	if err != nil {
		return Meta{}, err
	}
	tsText, err := v.get(r, v.tsHeader)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: missing %s", ErrTimestamp, v.tsHeader)
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: %s %s is not Unix seconds", ErrMalformed, v.tsHeader, quote(tsText))
	}
	ts, err := withinUnix(secs, time.Second, now, v.tolerance)
	if err != nil {
		return Meta{}, err
	}
	sigs, err := v.get(r, v.sigHeader)
	if err != nil {
		return Meta{}, err
	}
	signed := make([]byte, 0, len(id)+len(tsText)+len(body)+2)
	signed = append(append(append(append(append(signed, id...), '.'), tsText...), '.'), body...)

	var v1 [][]byte
	ok := false
	asymmetric := 0
	for _, part := range strings.Fields(sigs) {
		version, sig, found := strings.Cut(part, ",")
		if !found {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		switch version {
		case "v1":
			v1 = append(v1, raw)
		case "v1a":
			if len(v.publicKeys) == 0 {
				continue // never checked: no cost, no bound
			}
			if asymmetric++; asymmetric > MaxAsymmetricSignatures {
				return Meta{}, fmt.Errorf("%w: %s holds more than %d v1a signatures", ErrSignature, v.sigHeader, MaxAsymmetricSignatures)
			}
			for _, pk := range v.publicKeys {
				if ed25519.Verify(pk, signed, raw) {
					ok = true
				}
			}
		}
	}
	if len(v1) > 0 && len(v.hmacKeys) > 0 {
		expected := make([][]byte, len(v.hmacKeys))
		for i, k := range v.hmacKeys {
			mac := hmac.New(sha256.New, k)
			mac.Write(signed)
			expected[i] = mac.Sum(nil)
		}
		ok = anyEqual(expected, v1) || ok
	}
	if !ok {
		return Meta{}, fmt.Errorf("%w: no %s signature matches", ErrSignature, v.sigHeader)
	}
	meta := Meta{ID: id, Timestamp: ts}
	// The spec's payload carries the event's own time: {"type", "timestamp", "data"}.
	if m, err := bodyFields(body); err == nil {
		meta.Type, meta.OccurredAt = str(m, "type"), timeField(m, "timestamp")
	}
	return meta, nil
}
