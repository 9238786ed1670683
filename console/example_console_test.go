package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// The console is an http.Handler: mount it where operators reach it. A
// script uses its JSON API with a bearer token; here a viewer finds the
// events that mention a customer's email, as the events page would.
func ExampleNew() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // give the console a pool of its own: see ConfigurePool
	defer done()

	in, _ := inbox.New(nil)
	for _, id := range []string{"evt_1", "evt_2"} {
		_, err := in.Record(ctx, pool, inbox.Event{
			Source: "forms", ID: id, Type: "form.submitted",
			Payload: []byte(`{}`), Refs: map[string]string{"email": "ada@example.com"},
		})
		if err != nil {
			panic(err)
		}
	}

	token := "example-viewer-token" // in production: from the environment or a secret store
	c, err := console.New(pool, &console.Config{
		Users: []console.User{{Name: "oncall-script", Role: console.Viewer, Token: token}},
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(c) // in production: http.Handle("/console/", http.StripPrefix("/console", c))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/api/events?q=ada@example.com", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var page struct{ Events []console.EventRow }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		panic(err)
	}
	fmt.Println(resp.Status)
	for _, e := range page.Events {
		fmt.Println(e.Source, e.ID, e.Status, e.Refs["email"])
	}

	// Output:
	// 200 OK
	// forms evt_2 processed ada@example.com
	// forms evt_1 processed ada@example.com
}
