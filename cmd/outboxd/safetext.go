package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Stored payloads, headers, response bodies and errors come from senders
// and downstreams: printed raw, their escape sequences would drive the
// operator's terminal (retitle it, clear it, fake output). They are
// printed with control characters and invalid UTF-8 escaped, as
// strconv.Quote writes them (\x1b, \u009b), and nothing else changed.

// safeText escapes s for a block of text: line breaks and tabs stay.
func safeText(s string) string { return escapeUnsafe(s, "\n\t") }

// safeLine escapes s for one cell of a table: line breaks and tabs too.
func safeLine(s string) string { return escapeUnsafe(s, "") }

func escapeUnsafe(s, keep string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) && !strings.ContainsRune(keep, r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strings.ContainsRune(keep, r) || !unsafeRune(r):
			b.WriteString(s[i : i+n])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether r is a control character (C0, DEL, C1) or a
// format character such as a bidirectional override, which can disguise
// what is shown.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
