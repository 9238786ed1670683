package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// An action on a selection of ids records how many were selected, not the
// ids themselves in its filter: those go to message_ids, capped (a
// selection may be 1 MiB of ids, and every audit row is shown on /dead and
// by /api/audit).
func TestAuditKeepsTheSelectionsIdsOutOfItsFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for _, e := range []string{"evt-a1", "evt-a2", "evt-a3"} {
		id := b.receive(t, e, e+"@example.com")
		b.kill(t, id)
		ids = append(ids, fmt.Sprintf("%q", id.String()))
	}
	admin := "basic:ada:" + adminPass
	token := b.csrf(t, admin)
	body := `{"ids":[` + strings.Join(ids, ",") + `]}`
	if r := b.do(t, http.MethodPost, "/api/dead/requeue", admin, strings.NewReader(body), map[string]string{"X-CSRF-Token": token}); r.code != 200 {
		t.Fatalf("requeue: %d %s", r.code, r.body)
	}
	var filter string
	var n int64
	var kept []uuid.UUID
	if err := b.pool.QueryRow(t.Context(), `SELECT filter::text, count, message_ids FROM outboxd.console_audit`).Scan(&filter, &n, &kept); err != nil {
		t.Fatal(err)
	}
	if n != 3 || len(kept) != 3 || !strings.Contains(filter, `"ids_selected": 3`) || strings.Contains(filter, `"ids"`) {
		t.Fatalf("audit: count %d, %d ids kept, filter %s; want 3, 3 and the ids counted, not listed", n, len(kept), filter)
	}
}
