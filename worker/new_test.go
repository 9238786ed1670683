package worker_test

import (
	"strings"
	"testing"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/worker"
)

// A nil config is a config with nothing set: the error names the field a
// user must fill, never a panic nor "nil config".
func TestNewNamesTheRequiredDestinations(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	for _, cfg := range []*worker.Config{nil, {}} {
		_, err := worker.New(pool, cfg)
		if err == nil || !strings.Contains(err.Error(), "Config.Destinations is required") {
			t.Errorf("New(pool, %+v): %v, want an error naming Config.Destinations", cfg, err)
		}
	}
}

// A destination variable left nil, and a retry override for a destination
// that does not exist (a typo: the override never applies), are errors
// naming them.
func TestNewRefusesNilDestinationsAndUnknownRetryKeys(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	var unset *dispatch.HTTP
	_, err := worker.New(pool, &worker.Config{Destinations: map[string]dispatch.Destination{"crm": unset}})
	if err == nil || !strings.Contains(err.Error(), `Config.Destinations["crm"] is nil`) {
		t.Errorf("nil *dispatch.HTTP: %v, want an error naming it", err)
	}
	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = worker.New(pool, &worker.Config{
		Destinations:       map[string]dispatch.Destination{"crm": dest},
		RetryByDestination: map[string]worker.RetryPolicy{"cmr": {MaxAttempts: 3}},
	})
	if err == nil || !strings.Contains(err.Error(), `RetryByDestination["cmr"]`) {
		t.Errorf("RetryByDestination for an unknown destination: %v, want an error naming it", err)
	}
}

// A DestinationFunc variable left nil is refused like a nil pointer, and an
// empty destination name (no message can name it) is refused too.
func TestNewRefusesNilFuncsAndEmptyNames(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	var fn dispatch.DestinationFunc
	_, err := worker.New(pool, &worker.Config{Destinations: map[string]dispatch.Destination{"crm": fn}})
	if err == nil || !strings.Contains(err.Error(), `Config.Destinations["crm"] is nil`) {
		t.Errorf("nil DestinationFunc: %v, want an error naming it", err)
	}
	dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = worker.New(pool, &worker.Config{Destinations: map[string]dispatch.Destination{"": dest}})
	if err == nil || !strings.Contains(err.Error(), `Config.Destinations has an empty name`) {
		t.Errorf("empty destination name: %v, want an error saying so", err)
	}
}
