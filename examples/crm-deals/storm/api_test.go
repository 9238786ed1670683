package storm

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Item 19: the read API shows contacts' emails to token holders only.
func TestDealsNeedTheToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	l := lead{id: "L09", email: "ada@example.com", name: "Ada", amount: 100}
	for i := 0; i < 2; i++ { // delivered twice, as every webhook
		if r := e.send.form("form_L09", leadBody(l), time.Now()); r.code != 200 {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.CRMURL()+"/deals", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + Secrets.API + "x", Secrets.API, "Basic " + Secrets.API} {
		if code, body := get(auth); code != 401 || strings.Contains(body, "ada@") {
			t.Errorf("%q: %d %s", auth, code, body)
		}
	}
	if code, body := get("Bearer " + Secrets.API); code != 200 || strings.Count(body, "ada@example.com") != 1 {
		t.Fatalf("with the token: %d %s", code, body)
	}
}
