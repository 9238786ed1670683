package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
)

// serveConnections is what serve may hold apart from its pool (the
// dispatcher's LISTEN connection, River's listener, the leases' pool of 2,
// /metrics' one: docs/configuration.md, TestServeHoldsTheConnectionsTheDocsCount),
// and consoleConnections the console's pool.
const (
	serveConnections   = 5
	consoleConnections = console.PoolSize
)

// connLimitsSQL reads the limits that bound the role serve logs in as
// (session_user: a URL's role option changes current_user only): its
// CONNECTION LIMIT (-1: none), the database's (neither binds a superuser),
// and the server's max_connections less what it keeps for superusers.
const connLimitsSQL = `
SELECT CASE WHEN r.rolsuper THEN -1 ELSE r.rolconnlimit END,
       CASE WHEN r.rolsuper THEN -1 ELSE (SELECT datconnlimit FROM pg_database WHERE datname = current_database()) END,
       current_setting('max_connections')::int
         - CASE WHEN r.rolsuper THEN 0 ELSE current_setting('superuser_reserved_connections')::int END
FROM pg_roles r WHERE r.rolname = session_user`

// logConnectionLimits warns at serve's start when a limit is below what
// serve may hold: its recordings and claims then fail to connect (tried
// again: nothing is lost, but the lanes stall) and /readyz answers 503 at
// times, with nothing else saying why (an operator's trial: a role with
// CONNECTION LIMIT 5 against the 9 serve held).
func logConnectionLimits(ctx context.Context, pool *pgxpool.Pool, console bool, log *slog.Logger) {
	need := int(pool.Config().MaxConns) + serveConnections
	if console {
		need += consoleConnections
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var role, db, server int
	if err := pool.QueryRow(ctx, connLimitsSQL).Scan(&role, &db, &server); err != nil {
		log.Warn("could not read the connection limits of the role and the database", "error", err)
		return
	}
	for _, l := range []struct {
		name  string
		limit int
	}{{"the role's CONNECTION LIMIT", role}, {"the database's CONNECTION LIMIT", db}, {"the server's max_connections (less those kept for superusers)", server}} {
		if l.limit >= 0 && l.limit < need {
			log.Warn("serve may hold more connections than "+l.name+" allows: claims and recordings then fail to connect "+
				"(tried again, nothing lost, but lanes stall) and /readyz answers 503 at times; raise the limit or lower pool_max_conns "+
				"(serve holds pool_max_conns + 5, + 3 with the console)", "limit", l.limit, "serve_may_hold", need)
		}
	}
}
