package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// dialTimeout bounds each connection --check=connect opens to a
// destination's host; the destinations are tried at once, so the check
// takes about that long however many are down.
const dialTimeout = 5 * time.Second

// checkDestinations opens a TCP connection to each destination's host,
// all at once, and prints a line for each, reachable or not, in name
// order: a deploy hook learns of them all from one run (it stopped at the
// first, and took 5 s per unreachable one). It fails with the first
// unreachable destination and how many more.
func checkDestinations(ctx context.Context, stdout io.Writer, dests map[string]destinationConf) error {
	names := slices.Sorted(maps.Keys(dests))
	lines := make([]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { lines[i], errs[i] = reach(ctx, name, dests[name]) })
	}
	wg.Wait()
	var failed []error
	for i := range names {
		if errs[i] != nil {
			fmt.Fprintln(stdout, errs[i])
			failed = append(failed, errs[i])
			continue
		}
		fmt.Fprintln(stdout, lines[i])
	}
	switch n := len(failed); {
	case n == 1:
		return failed[0]
	case n > 1:
		return fmt.Errorf("%w (and %d more destination(s) unreachable, listed on stdout)", failed[0], n-1)
	}
	return nil
}

// reach dials a destination's hosts in turn (a NATS destination may list
// several servers: one that answers is enough) and says which answered.
func reach(ctx context.Context, name string, dc destinationConf) (string, error) {
	addrs, err := dialAddrs(dc)
	if err != nil {
		return "", fmt.Errorf("destination %s: %w", name, err)
	}
	for _, addr := range addrs {
		d := net.Dialer{Timeout: dialTimeout}
		conn, derr := d.DialContext(ctx, "tcp", addr)
		if derr == nil {
			conn.Close()
			return fmt.Sprintf("destination %s: %s reachable", name, addr), nil
		}
		// net's error repeats the address; keep its cause.
		var op *net.OpError
		if errors.As(derr, &op) {
			derr = op.Err
		}
		err = fmt.Errorf("destination %s: cannot reach %s: %w", name, strings.Join(addrs, ", "), derr)
	}
	return "", err
}

// dialAddrs are the host:port a destination connects to: one for an HTTP
// URL, one per server of a NATS list ("nats://a:4222, nats://b:4222").
func dialAddrs(dc destinationConf) ([]string, error) {
	raw := dc.URL
	if raw == "" && dc.Type == "nats" {
		raw = "nats://127.0.0.1:4222"
	}
	parts := []string{raw}
	if dc.Type == "nats" {
		parts = strings.Split(raw, ",")
	}
	var addrs []string
	for _, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Host == "" {
			return nil, errors.New("url: want an absolute URL")
		}
		if u.Port() != "" {
			addrs = append(addrs, u.Host)
			continue
		}
		port := map[string]string{"http": "80", "https": "443", "nats": "4222", "tls": "4222", "ws": "80", "wss": "443"}[u.Scheme]
		addrs = append(addrs, net.JoinHostPort(u.Hostname(), port))
	}
	return addrs, nil
}
