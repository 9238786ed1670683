package main

import "strings"

// diff returns the lines removed ("-") and added ("+") from want to got,
// with some unchanged context (" "), or "" if they are equal. A longest
// common subsequence table is fine at an API dump's few hundred lines.
func diff(want, got string) string {
	if want == got {
		return ""
	}
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []string // each line prefixed by ' ', '-' or '+'
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, " "+a[i])
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, "-"+a[i]) // removals first, as in a unified diff
			i++
		default:
			ops = append(ops, "+"+b[j])
			j++
		}
	}
	// Print changes with up to two unchanged lines around them.
	var out strings.Builder
	inHunk := false
	for k, op := range ops {
		near := false
		for c := max(0, k-2); c <= min(len(ops)-1, k+2); c++ {
			near = near || ops[c][0] != ' '
		}
		if near && !inHunk {
			if t := enclosingType(ops[:k]); t != "" {
				out.WriteString("@@ " + t + "\n")
			}
		}
		inHunk = near
		if near {
			out.WriteString(op + "\n")
		} else if !strings.HasSuffix(out.String(), "...\n") && out.Len() > 0 {
			out.WriteString("...\n")
		}
	}
	return out.String()
}

// enclosingType returns the "type X struct {" (or interface) line whose
// block the line after ops is in, or "" outside any: a field's change
// would otherwise not say whose field it is.
func enclosingType(ops []string) string {
	for k := len(ops) - 1; k >= 0; k-- {
		line := ops[k][1:]
		switch {
		case line == "}":
			return ""
		case strings.HasPrefix(line, "type ") && strings.HasSuffix(line, "{"):
			return line
		}
	}
	return ""
}
