package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/outboxd/outboxd/inbox/verify"
)

// A sender without a verifier of its own that signs with a plain HMAC
// ("X-Signature: sha256=<hex>") is described with HMACConfig. The verifier
// goes in an inbox.Source; here it is called directly to show what it
// returns: the event's id and type from the body, or an error that wraps
// ErrSignature for a body that was changed.
func ExampleHMAC() {
	const secret = "an example secret, never a real one" // from the sender's settings
	v, err := verify.HMAC(&verify.HMACConfig{
		Header:    "X-Signature",
		Prefix:    "sha256=",
		IDField:   "id",
		TypeField: "type",
		Secrets:   []string{secret},
	})
	if err != nil {
		panic(err)
	}

	body := `{"id":"evt_1","type":"order.paid","total":40}`
	mac := hmac.New(sha256.New, []byte(secret)) // what the sender does
	mac.Write([]byte(body))
	signature := "sha256=" + hex.EncodeToString(mac.Sum(nil))

	for _, received := range []string{body, strings.Replace(body, "40", "4000", 1)} {
		r := httptest.NewRequest("POST", "/webhooks/shop", strings.NewReader(received))
		r.Header.Set("X-Signature", signature)
		meta, err := v.Verify(r, []byte(received), time.Now())
		switch {
		case errors.Is(err, verify.ErrSignature):
			fmt.Println("refused:", err)
		case err != nil:
			fmt.Println("malformed:", err)
		default:
			fmt.Printf("event %s (%s)\n", meta.ID, meta.Type)
		}
	}

	// Output:
	// event evt_1 (order.paid)
	// refused: invalid signature: X-Signature does not match
}
