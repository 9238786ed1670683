package main

import (
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
)

// The gauges' read refused a table (a grant missing): outboxd_database_up
// is 0, which OutboxdDatabaseUnreachable reads as a database away, and the
// log says what it is: nothing was logged (an operator's trial).
func TestARefusedGaugesReadIsLogged(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	role := "outboxd_nodisp_" + strings.ToLower(rand.Text()[:8])
	roleURL := loginRole(t, b.url, role)
	load(t, b, "GRANT USAGE ON SCHEMA outboxd TO "+role, "GRANT SELECT ON ALL TABLES IN SCHEMA outboxd TO "+role,
		"REVOKE SELECT ON outboxd.outbox_dispatchers FROM "+role)
	var logs syncbuf.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDBCollector(pgtest.Connect(t, roleURL), "outboxd", nil, metricsDBTimeout,
		newRateLog(slog.New(slog.NewTextHandler(&logs, nil)), scrapeLogEvery)))
	if g := gauges(t, reg); g["outboxd_database_up"] != 0 {
		t.Fatalf("with outbox_dispatchers refused: %v", g)
	}
	text := logs.String()
	for _, want := range []string{"the database gauges could not be read", "outbox_dispatchers", "Roles and grants"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the log does not say %q:\n%s", want, text)
		}
	}
}
