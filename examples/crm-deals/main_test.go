package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/outboxd/outboxd/examples/crm-deals/storm"
	"github.com/outboxd/outboxd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Item 16: clients that dribble a body lose their connection after the
// read timeout, all of them, instead of holding it as long as they like.
func TestSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	for name, d := range map[string]time.Duration{"header": serverTimeouts.header, "read": serverTimeouts.read,
		"write": serverTimeouts.write, "idle": serverTimeouts.idle} {
		if d <= 0 || d > time.Minute {
			t.Errorf("%s timeout %s", name, d)
		}
	}
	env, err := storm.Start(context.Background(), pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=8"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer("", env.CRM, timeouts{header: time.Second, read: 2 * time.Second, write: 2 * time.Second, idle: 2 * time.Second})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	const clients = 30
	held := make([]time.Duration, clients)
	var wg sync.WaitGroup
	for i := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			start := time.Now()
			fmt.Fprintf(conn, "POST /webhooks/forms HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
			for time.Since(start) < 20*time.Second {
				if _, err := conn.Write([]byte("x")); err != nil {
					break // the server closed the connection
				}
				_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := conn.Read(make([]byte, 512)); err != nil && !isTimeout(err) {
					break
				}
			}
			held[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, d := range held {
		if d > 6*time.Second {
			t.Errorf("client %d held its connection %s", i, d.Round(time.Millisecond))
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
