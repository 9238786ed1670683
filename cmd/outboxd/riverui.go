package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"
)

// riverUI builds River UI for River's tables in schema, mounted by the
// console under /riverui/ behind its authentication (admins only). Its
// River client is never started: it only reads and edits jobs. River UI's
// handler runs background queries, so it is started here; stop ends them
// (its Start has no Stop: it stops when its context ends).
func riverUI(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (h http.Handler, stop func(), err error) {
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{Schema: schema, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("console: river ui: %w", err)
	}
	rh, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil), Logger: logger, Prefix: "/riverui",
		JobListHideArgsByDefault: true, // job args may hold event data: shown on request
	})
	if err != nil {
		return nil, nil, fmt.Errorf("console: river ui: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := rh.Start(ctx); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("console: river ui: start: %w", err)
	}
	return rh, cancel, nil
}
