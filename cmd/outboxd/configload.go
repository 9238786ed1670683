package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// loadConfig reads the YAML configuration file ("" for none). Before
// decoding, it expands ${VAR} in every value and checks every key and value
// against fileConfig, so that a mistake is reported with the field's path
// and in words, never with Go's type names.
func loadConfig(path string) (*fileConfig, error) {
	cfg := &fileConfig{path: path, lines: map[string]int{}, fromEnv: map[string]string{}}
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // empty file
		}
		return nil, fmt.Errorf("config %s: %s", path, yamlError(b, err))
	}
	// A second document would be ignored by the decoder: refuse it rather
	// than run with half of what the operator wrote.
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		line := second.Line
		if len(second.Content) > 0 {
			line = second.Content[0].Line
		}
		if err != nil {
			return nil, fmt.Errorf("config %s: %s", path, yamlError(b, err))
		}
		return nil, fmt.Errorf("config %s: line %d: a second YAML document (after ---): put everything in one", path, line)
	}
	root := doc.Content[0]
	ck := checker{cfg: cfg, expr: map[*yaml.Node]string{}}
	if err := ck.check(root, reflect.TypeOf(cfg).Elem(), ""); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := root.Decode(cfg); err != nil {
		// check accepts only what decodes, but it does not look for
		// duplicate keys: yaml reports those, one per line.
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("config %s: %s", path, strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// checker expands ${VAR} in a document's scalars and checks them against
// fileConfig, noting in cfg where each value was found.
type checker struct {
	cfg *fileConfig
	// expr holds each scalar already expanded, with the ${VAR} expression
	// it had ("" if none): an alias points at its anchor's node, which must
	// not be expanded twice ($${X} would become ${X}, then X's value).
	expr map[*yaml.Node]string
}

// check expands ${VAR} in n's scalars and checks that n fits t: known
// keys, and values that parse as the field's type.
func (c checker) check(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	where := func(format string, args ...any) error {
		p := path
		if p == "" {
			p = "the top level"
		}
		return fmt.Errorf("line %d: %s: %s", n.Line, p, fmt.Sprintf(format, args...))
	}
	if path != "" {
		c.cfg.lines[path] = n.Line
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value leaves the default
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return where("want a mapping of settings")
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" {
				continue // not from the file
			}
			fields[name] = t.Field(i).Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("line %d: %s: unknown setting", k.Line, join(path, k.Value))
				if s := nearest(k.Value, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
				return errors.New(msg)
			}
			if err := c.check(v, ft, join(path, k.Value)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return where("want a mapping")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value == "" && path == "destinations" {
				return fmt.Errorf("line %d: destinations: a destination needs a name", k.Line)
			}
			if err := c.check(n.Content[i+1], t.Elem(), join(path, k.Value)); err != nil {
				return err
			}
			c.cfg.lines[join(path, k.Value)] = k.Line
		}
		return nil
	default: // every other kind is a scalar, checked below
	}
	if n.Kind != yaml.ScalarNode {
		return where("want a single value, not a list or mapping")
	}
	expr, seen := c.expr[n]
	if !seen {
		expanded, err := expandEnv(n.Value)
		if err != nil {
			return where("%v", err)
		}
		if expanded != n.Value {
			expr = n.Value
			n.Value, n.Tag, n.Style = expanded, "", 0
		}
		c.expr[n] = expr
	}
	// What came from the environment may be a secret: errors show the
	// expression, never the value.
	shown := strconv.Quote(n.Value)
	if expr != "" {
		c.cfg.fromEnv[path] = expr
		shown = "the value of " + strconv.Quote(expr)
	}
	switch {
	case t == durationType:
		if _, err := time.ParseDuration(n.Value); err != nil {
			return where("%s is not a duration (want a number and a unit: 500ms, 10s, 5m, 72h)", shown)
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64: // after durations, which are int64s
		if _, err := strconv.ParseInt(n.Value, 10, 64); err != nil {
			return where("%s is not a whole number", shown)
		}
	case t.Kind() == reflect.Float64:
		if _, err := strconv.ParseFloat(n.Value, 64); err != nil {
			return where("%s is not a number", shown)
		}
	case t.Kind() == reflect.Bool:
		if _, err := strconv.ParseBool(n.Value); err != nil {
			return where("%s: want true or false", shown)
		}
	case t.Kind() == reflect.String:
		n.Tag = "!!str" // "on", "123", "yes" stay text
	}
	return nil
}

// yamlError words the parser's err on file b. The parser names no line
// for a character YAML does not allow (C0 and C1 controls but tab, line
// breaks and NEL; U+FFFE, U+FFFF) or invalid UTF-8: the line of the first
// one is added.
func yamlError(b []byte, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		return msg
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 || r < 0x20 && r != '\t' && r != '\n' && r != '\r' ||
			r >= 0x7f && r <= 0x9f && r != 0x85 || r == 0xfffe || r == 0xffff {
			return fmt.Sprintf("line %d: %s", 1+bytes.Count(b[:i], []byte("\n")), msg)
		}
		i += n
	}
	return msg
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// expandEnv replaces ${VAR} with the variable's value and $$ with $. An unset
// variable is an error: a silently empty "Bearer " is worse.
func expandEnv(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '$':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i++
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", errors.New("unclosed ${ (write $$ for a literal $)")
			}
			name := s[i+2 : i+end]
			if name == "" {
				return "", errors.New("${} names no variable (write ${NAME}, or $$ for a literal $)")
			}
			v, ok := os.LookupEnv(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

// nearest returns the candidate closest to s, if it is close enough to be
// the likely intent.
func nearest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
