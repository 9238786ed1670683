package main

import (
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// recorder is a Registerer that remembers what was registered, so a test
// can ask each collector for its descriptors: a vector without children
// describes itself but gathers nothing.
type recorder struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics returns the series names outboxd exports, from the real
// registries: what `outboxd serve` registers for /metrics
// (registerServeMetrics, as runServe calls it) and what the webhook
// receiver registers (inbox.NewMetrics, inbox.BacklogCollector), with the
// _bucket, _sum and _count series of histograms and summaries. families
// are the metrics' own names, sorted.
func exportedMetrics(t *testing.T) (series map[string]bool, families []string) {
	t.Helper()
	pool := pgtest.Pool(t)
	reg := prometheus.NewRegistry()
	rec := &recorder{Registerer: reg}
	_, gauges, err := registerServeMetrics(rec, pool, "outboxd", []string{"sink"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gauges.Close)
	if _, err := inbox.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	rec.MustRegister(inbox.BacklogCollector(pool, in))
	rec.MustRegister(newStartingGauge()) // /metrics while serve starts

	names := map[string]bool{}
	own := map[string]bool{}
	withSeries := func(name string, histogram bool) {
		names[name], own[name] = true, true
		if histogram {
			names[name+"_sum"], names[name+"_count"] = true, true
			names[name+"_bucket"] = true
		}
	}
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in descriptor %s", d)
			}
			switch c.(type) {
			case *prometheus.HistogramVec, prometheus.Histogram, *prometheus.SummaryVec, prometheus.Summary:
				withSeries(m[1], true)
			default:
				withSeries(m[1], false)
			}
		}
	}
	// Collectors of their own kind (Go, process) say their types when
	// gathered.
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range gathered {
		typ := f.GetType().String()
		withSeries(f.GetName(), typ == "HISTOGRAM" || typ == "SUMMARY")
	}
	for _, want := range []string{"outboxd_database_up", "outboxd_delivery_attempts_total", "outboxd_webhooks_total", "outboxd_build_info"} {
		if !names[want] {
			t.Fatalf("exportedMetrics lacks %s: %v", want, slices.Sorted(maps.Keys(names)))
		}
	}
	return names, slices.Sorted(maps.Keys(own))
}

// promqlWords are PromQL's keywords: identifiers that are not metrics.
var promqlWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// metricNames returns the metric names a PromQL expression selects. It
// strips strings, label matchers, ranges and label lists (by, on, ...),
// then takes every identifier that is not a keyword, a function or an
// aggregation (followed by "("), a number or a Grafana variable ($name).
func metricNames(expr string) []string {
	var b strings.Builder
	depth, closer := 0, byte(0)
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			// A string: skip to its end, escapes included.
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' && c != '`' {
					i++
				}
			}
			b.WriteByte(' ')
		case depth > 0:
			if c == closer {
				depth--
				b.WriteByte(' ')
			}
		case c == '{' || c == '[':
			depth, closer = 1, map[byte]byte{'{': '}', '[': ']'}[c]
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	s := labelLists.ReplaceAllString(b.String(), " ")
	var names []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case c == '$' || unicode.IsDigit(c) || c == '.':
			// A variable, or a number or duration (1e3, 0.95, 5m).
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			i = j
		case isIdentStart(s[i]):
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			rest := strings.TrimLeft(s[j:], " \t\n")
			if !promqlWords[strings.ToLower(word)] && !strings.HasPrefix(rest, "(") {
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

// labelLists are the label names after by, without, on, ignoring,
// group_left and group_right.
var labelLists = regexp.MustCompile(`(?i)\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)

func isIdentStart(c byte) bool { return c == '_' || c == ':' || unicode.IsLetter(rune(c)) }
func isIdentChar(c byte) bool  { return isIdentStart(c) || unicode.IsDigit(rune(c)) }

// The extractor finds the metrics of real-world expressions and nothing
// else, so the dashboard and alert tests cannot pass by missing a name.
func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string]string{
		`max by (destination) (outboxd_pending_messages{destination=~"a|b"}) > 0`:                                     "outboxd_pending_messages",
		`sum by (le) (rate(outboxd_attempt_duration_seconds_bucket[$__rate_interval]))`:                               "outboxd_attempt_duration_seconds_bucket",
		`histogram_quantile(0.95, sum by (source, le) (rate(x_bucket{le!="+Inf"}[10m] offset 5m)))`:                   "x_bucket",
		`up == 0 or absent(node_cpu_seconds_total) unless on (instance) group_left (version) outboxd_build_info`:      "up node_cpu_seconds_total outboxd_build_info",
		`sum(rate(a[5m])) / sum(rate(b:recorded[5m])) * 1e3 > bool 0.5 and c`:                                         "a b:recorded c",
		`label_replace(outboxd_database_up, "x", "$1", "instance", "(.*)")`:                                           "outboxd_database_up",
		`count by (version, goversion) (outboxd_build_info) - ignoring(version) sum without (job) (process_open_fds)`: "outboxd_build_info process_open_fds",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}

// docs/operations.md's "Metrics" section names every outboxd_ metric that
// serve and the receiver export, and no other.
func TestMetricsDocumented(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(raw), "\n## Metrics\n")
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(outboxd_[a-z_]+)").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
	}
	exported, families := exportedMetrics(t)
	for _, f := range families {
		if strings.HasPrefix(f, "outboxd_") && !documented[f] {
			t.Errorf("%s is exported but not in docs/operations.md's Metrics", f)
		}
	}
	for d := range documented {
		if !exported[d] {
			t.Errorf("docs/operations.md's Metrics names %s, which is not exported", d)
		}
	}
}
