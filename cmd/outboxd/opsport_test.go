package main

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// A client dribbling a request body at the ops port loses its connection
// after opsReadTimeout (docs/configuration.md: 10 s), instead of holding it
// as long as it likes.
func TestOpsPortDropsADribblingClient(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	d := startDaemon(t, serveConfig(t, b.url, b.sink.URL()))
	var conn net.Conn
	waitUntil(t, 20*time.Second, "the ops port", func() bool {
		c, err := net.Dial("tcp", d.listen)
		if err == nil {
			conn = c
		}
		return err == nil
	})
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: ops\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn)) // until the server closes
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case took := <-closed:
			if took < opsReadTimeout-time.Second {
				t.Fatalf("closed after %s, before the read timeout", took)
			}
			t.Logf("dribbling client cut off after %s", took.Round(100*time.Millisecond))
			return
		case <-tick.C:
			if time.Since(start) > opsReadTimeout+5*time.Second {
				t.Fatalf("still connected %s after the request began (read timeout %s)", time.Since(start), opsReadTimeout)
			}
			_, _ = conn.Write([]byte("x"))
		}
	}
}
