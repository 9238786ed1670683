package verify

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1; we verify what it sends
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

type twilio struct {
	tokens    []string
	publicURL string
}

// Twilio verifies X-Twilio-Signature: base64 HMAC-SHA1 (key: the auth
// token) of the full request URL followed, for form bodies, by every
// distinct (name, value) pair sorted by name, then value. A JSON body is
// bound instead by the bodySHA256 query parameter (hex SHA-256 of the
// body). Like Twilio's own validators, the URL is accepted with or without
// its port (":443" or ":80" added when absent, any port stripped), since
// Twilio's signing is not consistent about it. publicURL is the URL Twilio
// calls, scheme and host included, when a proxy rewrites it ("": rebuilt
// from the request).
//
// Event id: the I-Twilio-Idempotency-Token header; without it the message
// or call SID together with its status ("SM...:delivered"), since one
// message or call sends a status callback per status, all with its SID.
func Twilio(publicURL string, authTokens ...string) (Verifier, error) {
	if err := requireSecrets("twilio", authTokens); err != nil {
		return nil, err
	}
	return &twilio{tokens: authTokens, publicURL: publicURL}, nil
}

func (v *twilio) Verify(r *http.Request, body []byte, _ time.Time) (Meta, error) {
	h, err := header(r, "X-Twilio-Signature")
	if err != nil {
		return Meta{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: X-Twilio-Signature is not base64", ErrMalformed)
	}
	full := v.publicURL
	if full == "" {
		scheme := "https"
		if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
			scheme = "http"
		}
		full = scheme + "://" + r.Host + r.URL.RequestURI()
	} else if r.URL.RawQuery != "" && !strings.Contains(full, "?") {
		full += "?" + r.URL.RawQuery
	}
	u, err := url.Parse(full)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: request URL: %w", ErrMalformed, err)
	}
	var params []byte
	fields := map[string]string{}
	if bodyHash := u.Query().Get("bodySHA256"); bodyHash != "" {
		sum := sha256.Sum256(body)
		if !hmac.Equal([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(bodyHash))) {
			return Meta{}, fmt.Errorf("%w: body does not match bodySHA256", ErrSignature)
		}
		if m, err := bodyFields(body); err == nil {
			for k := range m {
				fields[k] = str(m, k)
			}
		}
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return Meta{}, fmt.Errorf("%w: form body: %w", ErrMalformed, err)
		}
		params = formParams(form)
		for k := range form {
			fields[k] = form.Get(k)
		}
	}
	var expected [][]byte
	for _, candidate := range urlVariants(u, full) {
		for _, tok := range v.tokens {
			m := hmac.New(sha1.New, []byte(tok))
			m.Write([]byte(candidate))
			m.Write(params)
			expected = append(expected, m.Sum(nil))
		}
	}
	if !anyEqual(expected, [][]byte{raw}) {
		return Meta{}, fmt.Errorf("%w: X-Twilio-Signature does not match (is the URL Twilio calls %s?)", ErrSignature, quote(full))
	}
	sid := firstNonEmpty(fields["MessageSid"], fields["SmsSid"], fields["CallSid"], fields["Sid"])
	status := firstNonEmpty(fields["MessageStatus"], fields["SmsStatus"], fields["CallStatus"])
	// The token header is not signed, and Twilio signs no time: the body
	// (sid, status and the rest of the callback) also dedupes, so a captured
	// callback replayed under another token is a duplicate.
	meta := Meta{ID: r.Header.Get("I-Twilio-Idempotency-Token"), Type: status, BodyUnique: true}
	if meta.ID == "" && sid != "" {
		meta.ID = sid
		if status != "" {
			meta.ID += ":" + status
		}
	}
	return meta, nil
}

// formParams is what Twilio appends to the URL: each distinct (name, value)
// pair once, by name then value (a repeated "Tag=a&Tag=a" counts once, as
// in Twilio's validators).
func formParams(form url.Values) []byte {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []byte
	for _, k := range names {
		vals := slices.Clone(form[k])
		sort.Strings(vals)
		for _, val := range slices.Compact(vals) {
			out = append(append(out, k...), val...)
		}
	}
	return out
}

// urlVariants are the URLs Twilio may have signed: as received, without its
// port, and with the scheme's default port.
func urlVariants(u *url.URL, full string) []string {
	out := []string{full}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	bare := *u
	bare.Host = host
	out = append(out, bare.String())
	port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	if port != "" && (u.Port() == "" || u.Port() == port) {
		withPort := *u
		withPort.Host = net.JoinHostPort(u.Hostname(), port)
		out = append(out, withPort.String())
	}
	return out
}
