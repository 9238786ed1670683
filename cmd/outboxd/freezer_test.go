package main

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// freezer is a TCP proxy to a database that can freeze: while frozen it
// keeps every connection open and passes nothing, as a partitioned network
// or a stuck server does, so that a client sees no error, only silence.
type freezer struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	open  chan struct{} // closed while traffic flows
	conns []net.Conn
	// freezeOnReady freezes the proxy once it has passed a server's first
	// ReadyForQuery: a connection made, then silence.
	freezeOnReady atomic.Bool
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, open: make(chan struct{})}
	close(f.open)
	go f.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		f.thaw()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			_ = c.Close()
		}
	})
	return f
}

// via returns dbURL with its host replaced by the proxy's.
func (f *freezer) via(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = f.ln.Addr().String()
	return u.String()
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.open:
		f.open = make(chan struct{})
	default:
	}
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.open:
	default:
		close(f.open)
	}
}

// frozen reports whether the proxy passes nothing.
func (f *freezer) frozen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.open:
		return false
	default:
		return true
	}
}

// wait blocks while the proxy is frozen.
func (f *freezer) wait() {
	f.mu.Lock()
	open := f.open
	f.mu.Unlock()
	<-open
}

func (f *freezer) track(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = append(f.conns, c)
}

func (f *freezer) accept() {
	for {
		client, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.track(client)
		go func() {
			f.wait() // a new connection hangs too
			server, err := net.Dial("tcp", f.target)
			if err != nil {
				_ = client.Close()
				return
			}
			f.track(server)
			go f.pipe(server, client, false)
			f.pipe(client, server, true)
		}()
	}
}

// readyForQuery is the start of PostgreSQL's ReadyForQuery message.
var readyForQuery = []byte{'Z', 0, 0, 0, 5}

func (f *freezer) pipe(dst, src net.Conn, fromServer bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if fromServer && f.freezeOnReady.Load() && bytes.Contains(buf[:n], readyForQuery) {
				f.freeze()
			}
		}
		if err != nil {
			return
		}
	}
}
