package verify

import (
	"crypto/sha1" //nolint:gosec // some senders still sign with HMAC-SHA1
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Hash names the hash function of an HMAC.
type Hash string

const (
	// HashSHA1 is HMAC-SHA1, which some senders still use.
	HashSHA1 Hash = "sha1"
	// HashSHA256 is HMAC-SHA256.
	HashSHA256 Hash = "sha256"
	// HashSHA512 is HMAC-SHA512.
	HashSHA512 Hash = "sha512"
)

// Encoding names how a signature header encodes the MAC's bytes.
type Encoding string

const (
	// EncodingHex is lowercase or uppercase hexadecimal.
	EncodingHex Encoding = "hex"
	// EncodingBase64 is standard base64 with padding.
	EncodingBase64 Encoding = "base64"
)

// HMACConfig describes a sender that signs with a plain HMAC, for the
// generic source.
type HMACConfig struct {
	// Header carries the signature. Required.
	Header string
	// Hash is HashSHA1, HashSHA256 or HashSHA512. Default HashSHA256.
	Hash Hash
	// Encoding of the signature: EncodingHex or EncodingBase64. Default
	// EncodingHex.
	Encoding Encoding
	// Prefix before the encoded signature ("sha256=", "v1="...), if any.
	// Default "": the header holds the encoded signature alone.
	Prefix string
	// TimestampHeader, when set, carries Unix seconds that are signed as
	// "<timestamp>.<body>" and checked against Tolerance. Default "": the
	// body alone is signed and no time is checked.
	TimestampHeader string
	// Tolerance bounds how far the signed time may be from now, either
	// way. Default 5 min; unused without TimestampHeader.
	Tolerance time.Duration
	// IDHeader or IDField (a top-level JSON field of the body: a
	// non-empty string, or an integer written in digits, with an optional
	// minus sign and no exponent, whose text is the id: 5 and "5" are one
	// event, 1e3 is refused) gives the
	// event id; TypeHeader or TypeField the type (with both, the header
	// when the request has it, else the field). Default "" for each: without an id the receiver keys the event
	// on a hash of its body, without a type the event has none. An IDField
	// that is there but empty, null, fractional or of another type is a
	// malformed payload (422).
	IDHeader, IDField, TypeHeader, TypeField string
	// Secrets, any of which may have signed. Required.
	Secrets []string
}

type generic struct {
	cfg     HMACConfig
	newHash func() hash.Hash
}

// HMAC returns a verifier for a sender described by cfg. A nil cfg lacks
// the required Header, and the error says so.
func HMAC(cfg *HMACConfig) (Verifier, error) {
	if cfg == nil || cfg.Header == "" {
		return nil, fmt.Errorf("verify: HMACConfig.Header is required")
	}
	if err := requireSecrets("generic HMAC", cfg.Secrets); err != nil {
		return nil, err
	}
	g := &generic{cfg: *cfg}
	switch cfg.Hash {
	case "", HashSHA256:
		g.newHash = sha256.New
	case HashSHA1:
		g.newHash = sha1.New
	case HashSHA512:
		g.newHash = sha512.New
	default:
		return nil, fmt.Errorf("verify: HMACConfig.Hash %q: want sha1, sha256 or sha512", cfg.Hash)
	}
	switch cfg.Encoding {
	case "", EncodingHex, EncodingBase64:
	default:
		return nil, fmt.Errorf("verify: HMACConfig.Encoding %q: want hex or base64", cfg.Encoding)
	}
	if err := checkHMACFields(cfg); err != nil {
		return nil, err
	}
	if g.cfg.Tolerance == 0 {
		g.cfg.Tolerance = 5 * time.Minute
	}
	return g, nil
}

// checkHMACFields refuses what would make every request fail.
func checkHMACFields(cfg *HMACConfig) error {
	switch {
	case cfg.Tolerance < 0:
		return fmt.Errorf("verify: HMACConfig.Tolerance %s is negative (every request would be too old)", cfg.Tolerance)
	case cfg.TimestampHeader != "" && http.CanonicalHeaderKey(cfg.TimestampHeader) == http.CanonicalHeaderKey(cfg.Header):
		return fmt.Errorf("verify: HMACConfig.TimestampHeader is the signature's header %s", http.CanonicalHeaderKey(cfg.Header))
	}
	return nil
}

func (g *generic) Verify(r *http.Request, body []byte, now time.Time) (Meta, error) {
	h, err := header(r, g.cfg.Header)
	if err != nil {
		return Meta{}, err
	}
	var meta Meta
	parts := [][]byte{body}
	if g.cfg.TimestampHeader != "" {
		tsText, err := header(r, g.cfg.TimestampHeader)
		if err != nil {
			return Meta{}, fmt.Errorf("%w: missing %s", ErrTimestamp, g.cfg.TimestampHeader)
		}
		secs, err := strconv.ParseInt(tsText, 10, 64)
		if err != nil {
			return Meta{}, fmt.Errorf("%w: %s %s is not Unix seconds", ErrMalformed, g.cfg.TimestampHeader, quote(tsText))
		}
		if meta.Timestamp, err = withinUnix(secs, time.Second, now, g.cfg.Tolerance); err != nil {
			return Meta{}, err
		}
		parts = [][]byte{[]byte(tsText), {'.'}, body}
	}
	var candidates [][]byte
	for _, one := range strings.Split(h, ",") {
		enc, ok := strings.CutPrefix(strings.TrimSpace(one), g.cfg.Prefix)
		if !ok {
			continue
		}
		var raw []byte
		if g.cfg.Encoding == EncodingBase64 {
			raw, err = base64.StdEncoding.DecodeString(enc)
		} else {
			raw, err = hex.DecodeString(enc)
		}
		if err == nil {
			candidates = append(candidates, raw)
		}
	}
	if len(candidates) == 0 {
		return Meta{}, fmt.Errorf("%w: %s holds no %s%s signature", ErrMalformed, g.cfg.Header, g.cfg.Prefix, g.encoding())
	}
	if !anyEqual(macs(g.newHash, g.cfg.Secrets, parts...), candidates) {
		return Meta{}, fmt.Errorf("%w: %s does not match", ErrSignature, g.cfg.Header)
	}
	meta.ID, meta.Type = r.Header.Get(g.cfg.IDHeader), r.Header.Get(g.cfg.TypeHeader)
	if g.cfg.IDField != "" || g.cfg.TypeField != "" {
		m, err := bodyFields(body)
		if err != nil {
			return Meta{}, err
		}
		id, err := idOrInteger(m, body, g.cfg.IDField)
		if err != nil {
			return Meta{}, err
		}
		meta.ID = firstNonEmpty(meta.ID, id)
		meta.Type = firstNonEmpty(meta.Type, str(m, g.cfg.TypeField))
	}
	return meta, nil
}

// SignatureHeaders names the header that carries the signature, so that the
// receiver never stores it, whatever its name.
func (g *generic) SignatureHeaders() []string { return []string{g.cfg.Header} }

func (g *generic) encoding() Encoding {
	if g.cfg.Encoding == "" {
		return EncodingHex
	}
	return g.cfg.Encoding
}
