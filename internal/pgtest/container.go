package pgtest

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

func fromTestcontainers(ctx context.Context) (srv *Server, err error) {
	// testcontainers may panic when no Docker host can be found at all.
	defer func() {
		if r := recover(); r != nil {
			srv, err = nil, fmt.Errorf("no Docker engine: %v", r)
		}
	}()
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, fmt.Errorf("no Docker engine: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := provider.Health(hctx); err != nil {
		_ = provider.Close()
		return nil, fmt.Errorf("no Docker engine: %w", err)
	}
	_ = provider.Close()

	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "postgres:16-alpine",
			Env:          map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"},
			ExposedPorts: []string{"5432/tcp"},
			Cmd:          []string{"postgres", "-c", "fsync=off", "-c", "max_connections=300"},
			// The entrypoint starts the server twice (init, then for real).
			WaitingFor: wait.ForLog("database system is ready to accept connections").
				WithOccurrence(2).WithStartupTimeout(2 * time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return nil, fmt.Errorf("start container: %w", err)
	}
	endpoint, err := c.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, fmt.Errorf("container endpoint: %w", err)
	}
	return &Server{
		AdminURL: "postgres://postgres@" + endpoint + "/postgres?sslmode=disable",
		Origin:   "testcontainers postgres:16-alpine",
		close:    func() error { return c.Terminate(context.Background()) },
	}, nil
}
