package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/outboxd/outboxd/outbox"
)

// A body that is the JSON literal null comes out as payload_text "null":
// "payload": null would read like the absent values, which are null too.
// The body with blanks around it is the same case.
func TestJSONNullPayloadUnambiguous(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	for _, body := range []string{"null", " null\n"} {
		m, err := b.ob.Enqueue(context.Background(), b.pool, outbox.Message{Destination: "crm", Payload: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		r := runIn("outbox", "show", m.ID.String(), "--json", "--database-url", b.url)
		shown := decodeJSON[map[string]json.RawMessage](t, "outbox show", r)
		var text string
		_ = json.Unmarshal(shown["payload_text"], &text)
		if _, ok := shown["payload"]; ok || text != body {
			t.Errorf("body %q: payload %s, payload_text %s; want only payload_text %q", body, shown["payload"], shown["payload_text"], body)
		}
	}
}
