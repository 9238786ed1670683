package outbox

import (
	"net/http"
	"testing"
)

// BenchmarkPrepare is the client's own check of a message before its
// statement (lengths, text PostgreSQL can store, headers; a new UUIDv7 and
// the key made from it): run it before and after a change to prepare.
//
//	go test -run '^$' -bench Prepare -benchmem ./outbox/
func BenchmarkPrepare(b *testing.B) {
	base := Message{Destination: "crm-api", Type: "deal.won", OrderingKey: "customer-4711",
		Payload: []byte(`{"deal":"d-1"}`), Headers: http.Header{"Content-Type": {"application/json"}}}
	for b.Loop() {
		m := base
		if err := m.prepare(); err != nil {
			b.Fatal(err)
		}
	}
}
