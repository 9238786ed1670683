package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// The console on a pool in the exec or simple-protocol mode (the serve
// configuration's database URL may ask for it: PgBouncer's usual settings)
// finds, shows, requeues by id and audits as in the default mode.
func TestConsoleInExecAndSimpleProtocolModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			b := setupOn(t, pgtest.Connect(t, pgtest.URL(t)+"&default_query_exec_mode="+mode))
			id := b.receive(t, "evt-m1", "m1@example.com")
			b.kill(t, id)
			bot := "bearer:" + adminToken
			if r := b.do(t, http.MethodGet, "/api/messages/"+id.String(), bot, nil, nil); r.code != 200 || !strings.Contains(r.body, id.String()) {
				t.Fatalf("message: %d %s", r.code, r.body)
			}
			// The event's messages: its id goes as a text array (eventkey.Forms).
			if r := b.do(t, http.MethodGet, "/api/events/forms/evt-m1", bot, nil, nil); r.code != 200 || !strings.Contains(r.body, id.String()) {
				t.Fatalf("event: %d %s", r.code, r.body)
			}
			body := fmt.Sprintf(`{"ids":[%q],"expect":1}`, id)
			res := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/dead/requeue", bot, strings.NewReader(body), nil))
			if res["count"] != 1.0 || b.status(t, id) != "pending" {
				t.Fatalf("requeue by id: %v, status %s", res, b.status(t, id))
			}
			var audited int
			if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM outboxd.console_audit WHERE $1::uuid = ANY(message_ids)`, id.String()).Scan(&audited); err != nil || audited != 1 {
				t.Fatalf("audit rows naming the message: %d %v", audited, err)
			}
		})
	}
}
