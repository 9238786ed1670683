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
// handler runs background queries, so it is started here, under ctx.
func riverUI(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (http.Handler, error) {
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{Schema: schema, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("console: river ui: %w", err)
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil), Logger: logger, Prefix: "/riverui",
		JobListHideArgsByDefault: true, // job args may hold event data: shown on request
	})
	if err != nil {
		return nil, fmt.Errorf("console: river ui: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("console: river ui: start: %w", err)
	}
	return h, nil
}
