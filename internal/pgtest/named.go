package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Recreate drops and creates the database name on the server at adminURL,
// applies outboxd's migrations, and returns its URL (credentials and options
// kept). The benchmarks and the demo use it for their own, named databases.
func Recreate(ctx context.Context, adminURL, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
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

func validName(name string) error {
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("pgtest: database name %q: lower-case letters, digits and _ only", name)
		}
	}
	if name == "" {
		return fmt.Errorf("pgtest: empty database name")
	}
	return nil
}
