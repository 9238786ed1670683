package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// Recreate drops and creates the database name on the server at adminURL,
// applies outboxd's migrations, and returns its URL (credentials and options
// kept). The benchmarks and the demo use it for their own, named databases.
func Recreate(ctx context.Context, adminURL, name string) (string, error) {
	// Database names follow the same plain-identifier rule as schemas.
	if err := dbschema.Validate(name); err != nil {
		return "", fmt.Errorf("pgtest: database name: %w", err)
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
	}
	url, err := withDatabase(adminURL, name)
	if err != nil {
		return "", err
	}
	if err := migrate(url); err != nil {
		return "", fmt.Errorf("migrate %s: %w", name, err)
	}
	return url, nil
}
