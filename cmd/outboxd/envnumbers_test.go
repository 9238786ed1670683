package main

import (
	"reflect"
	"strings"
	"testing"
)

// Every setting that is not text (a count, a size, a duration, a rate, a
// switch) set from the environment to what it cannot be is refused by
// name, the ${VAR} shown and never its value: found by walking the
// config's type, so that a new field cannot miss the check (batch_bytes,
// an int64, got yaml's own error, which quoted the value).
func TestEveryNonTextSettingHidesAnEnvValue(t *testing.T) {
	t.Parallel()
	const secret = "EnvSecretXyz"
	paths := scalarPaths(reflect.TypeOf(fileConfig{}), nil)
	if len(paths) < 20 {
		t.Fatalf("found only %d settings: %v", len(paths), paths)
	}
	for _, p := range paths {
		body := yamlAt(p, "${ENV_SECRET}")
		if p[0] != "destinations" {
			body += "destinations:\n  a:\n    url: http://127.0.0.1:1/x\n"
		}
		path := writeFile(t, "outboxd.yaml", body)
		r := outboxd(t, []string{"ENV_SECRET=" + secret, "DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}, "serve", "--config", path, "--check")
		key := strings.Join(p, ".")
		if r.code != 2 || !strings.Contains(firstLine(r.stderr), key+`: the value of "${ENV_SECRET}"`) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 naming %s and the variable", key, r.code, r.stderr, key)
		}
		if strings.Contains(r.stdout+r.stderr, secret[:4]) {
			t.Errorf("%s: the environment's value echoed: %q", key, r.stderr)
		}
	}
}

// scalarPaths lists the YAML paths of t's settings that are not text,
// with "a" for a map's key.
func scalarPaths(t reflect.Type, prefix []string) [][]string {
	var out [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := append(append([]string{}, prefix...), name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, scalarPaths(ft, p)...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, scalarPaths(ft.Elem(), append(p, "a"))...)
		case ft.Kind() == reflect.Int || ft.Kind() == reflect.Int64 || ft.Kind() == reflect.Float64 || ft.Kind() == reflect.Bool:
			out = append(out, p)
		}
	}
	return out
}

// yamlAt is a YAML document setting path to value.
func yamlAt(path []string, value string) string {
	var b strings.Builder
	for i, k := range path {
		b.WriteString(strings.Repeat("  ", i) + k + ":")
		if i == len(path)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// A destination's configured headers over 64 KiB are refused by serve
// --check (exit 2), sizes given, the value (a token from the environment)
// never: a trial's 70 kB token passed, and every message of its
// destination died on the server's 431.
func TestServeCheckRefusesHugeDestinationHeaders(t *testing.T) {
	t.Parallel()
	token := "TokSecret" + strings.Repeat("s", 70_000)
	path := writeFile(t, "outboxd.yaml", "destinations:\n  sink:\n    url: http://127.0.0.1:1/x\n    headers:\n      X-Tok: ${BIG_TOKEN}\n")
	r := outboxd(t, []string{"BIG_TOKEN=" + token, "DATABASE_URL=postgres://postgres@127.0.0.1:1/x"}, "serve", "--config", path, "--check")
	// 70,018 bytes of X-Tok, and the User-Agent serve adds.
	want := "outboxd serve: config " + path + ": line 2: destinations.sink: HTTPConfig.Headers: the headers take 70"
	if r.code != 2 || !strings.HasPrefix(firstLine(r.stderr), want) || !strings.Contains(r.stderr, "bytes as sent, more than 65536") ||
		strings.Contains(r.stdout+r.stderr, "TokSecret") {
		t.Fatalf("exit %d, stderr %.300q; want exit 2 and %q, no token", r.code, r.stderr, want)
	}
}
