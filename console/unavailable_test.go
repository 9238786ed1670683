package console_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// stallProxy passes TCP to target until stall, then keeps every
// connection open and passes nothing: a network partition or a stuck
// server, where the client sees no error, only silence.
type stallProxy struct {
	ln     net.Listener
	target string
	once   sync.Once
	stop   chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, stop: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// close ends every connection, so that clients stuck on one see it end.
func (p *stallProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

func (p *stallProxy) stall() { p.once.Do(func() { close(p.stop) }) }

func (p *stallProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies chunk by chunk, and stops passing (without closing) once
// stalled.
func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.stop:
			<-make(chan struct{}) // hold the bytes, and the connection, forever
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// When PostgreSQL stops answering, a page answers 503 "database
// unavailable" (the API as JSON) once the request's deadline passes, rather
// than hanging; the console's pool is its own, configured by
// ConfigurePool (PoolSize connections, statement_timeout at the deadline).
func TestDatabaseUnavailableAnswers503(t *testing.T) {
	t.Parallel()
	direct := pgtest.Pool(t)
	cfg := direct.Config()
	proxy := newStallProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, itoa(cfg.ConnConfig.Port)))
	host, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = host, uint16(atoi(port))
	const deadline = time.Second // short here; the default is asserted in TestRequestDefaults
	console.ConfigurePool(cfg, deadline)
	if cfg.MaxConns != console.PoolSize || cfg.ConnConfig.RuntimeParams["statement_timeout"] != "1000" {
		t.Fatalf("ConfigurePool: %d conns, statement_timeout %q", cfg.MaxConns, cfg.ConnConfig.RuntimeParams["statement_timeout"])
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.close(); pool.Close() })
	c, err := console.New(pool, &console.Config{InsecureNoAuth: true, RequestTimeout: deadline})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	get := func(path string) (int, string, string) {
		// A client that gives up long after the deadline: without one the
		// old console hung here.
		client := &http.Client{Timeout: 30 * time.Second}
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, body := get("/api/events"); code != http.StatusOK {
		t.Fatalf("before the stall: %d %s", code, body)
	}
	proxy.stall()
	for _, path := range []string{"/events", "/destinations", "/api/events?q=x", "/api/destinations"} {
		code, ctype, body := get(path)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "database unavailable") {
			t.Fatalf("%s while the database is silent: %d %s", path, code, body)
		}
		if strings.HasPrefix(path, "/api/") != strings.HasPrefix(ctype, "application/json") {
			t.Fatalf("%s: Content-Type %s", path, ctype)
		}
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
