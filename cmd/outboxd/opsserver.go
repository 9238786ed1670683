package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// opsReadTimeout bounds reading one request on the ops port (headers and
// body).
const opsReadTimeout = 10 * time.Second

// opsServer is serve's ops port. It answers from before the migrations and
// the database connection: while serve starts, /healthz says the process is
// alive and /readyz what it waits for (503), so that a liveness probe never
// restarts a process in the middle of a long index build (which a restart
// cuts short, every time). Once the dispatcher exists, its handler serves.
type opsServer struct {
	handoff
	ln    net.Listener
	srv   *http.Server
	phase atomic.Pointer[string]
}

// handoff is an http.Handler whose handler is set, and set again, while it
// serves: a port answers from the moment it is bound.
type handoff struct{ h atomic.Pointer[http.Handler] }

func (f *handoff) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*f.h.Load()).ServeHTTP(w, r) }

// serve hands the port to h.
func (f *handoff) serve(h http.Handler) { f.h.Store(&h) }

// startOps listens on serve's ops address and answers as starting.
func startOps(set serveSettings, logger *slog.Logger) (*opsServer, error) {
	ln, err := net.Listen("tcp", set.listen)
	if err != nil {
		// net's error repeats the address, which may come from the
		// environment: name where it came from instead.
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		at := set.listen
		switch {
		case set.listenAt.expr != "":
			at = "the value of " + set.listenAt.expr
		case !set.listenAt.echo:
			at = "the address in " + set.listenAt.name
		}
		return nil, fmt.Errorf("listen on %s: %w", at, err)
	}
	o := &opsServer{ln: ln}
	o.starting("starting")
	o.serve(o.startingHandler())
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 5 * time.Second,
		// A client that dribbles its request, or idles, cannot hold a
		// connection: opsReadTimeout is documented and tested.
		ReadTimeout: opsReadTimeout, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
		MaxHeaderBytes: 64 << 10}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("ops server failed", "error", err)
		}
	}()
	return o, nil
}

// starting says what /readyz waits for until serve hands over.
func (o *opsServer) starting(phase string) { o.phase.Store(&phase) }

func (o *opsServer) addr() string { return o.ln.Addr().String() }

// shutdown lets requests in flight finish, within ctx.
func (o *opsServer) shutdown(ctx context.Context) { _ = o.srv.Shutdown(ctx) }

// close stops at once (after shutdown, it has nothing left to do), the
// listener too (a server whose Serve has not begun does not know it).
func (o *opsServer) close() { _ = o.srv.Close(); _ = o.ln.Close() }

// startingHandler answers until the dispatcher exists. /metrics answers
// 200 with the process's own metrics, outboxd_build_info and
// outboxd_starting 1, so that Prometheus scrapes a process that starts
// (a long serve --migrate) as up; the dispatcher's and the database's
// series come with the handover.
func (o *opsServer) startingHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "starting: "+*o.phase.Load(), http.StatusServiceUnavailable)
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo(),
		newStartingGauge())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// newStartingGauge is outboxd_starting, served only while serve starts.
func newStartingGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outboxd_starting",
		Help: "1 while outboxd serve starts (connects, applies migrations with --migrate, starts the dispatcher); absent after.",
	}, func() float64 { return 1 })
}

// stoppingHandler is h, except that /readyz says serve is stopping (it
// said the dispatcher was not listening, or its leases not renewed).
func stoppingHandler(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "stopping: finishing in-flight deliveries (up to shutdown_timeout)", http.StatusServiceUnavailable)
	})
	mux.Handle("/", h)
	return mux
}
