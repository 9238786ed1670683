package readme

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// goBlocks returns the contents of md's ```go blocks, in order.
func goBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case !in && line == "```go":
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

var begin = regexp.MustCompile(`^(\s*)// README\.md go block (\d+)$`)

// regions returns the README regions of an example file by block number,
// each without the indentation of its begin marker.
func regions(src string) (map[int]string, error) {
	out := map[int]string{}
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		m := begin.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		var body []string
		for i++; ; i++ {
			if i == len(lines) {
				return nil, fmt.Errorf("block %d has no end marker", n)
			}
			if strings.TrimSpace(lines[i]) == "// end of README.md go block" {
				break
			}
			body = append(body, strings.TrimPrefix(lines[i], m[1]))
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("block %d twice", n)
		}
		out[n] = strings.Join(body, "\n")
	}
	return out, nil
}

// TestReadmeBlocksAreExamples fails when a ```go block of README.md is not
// line for line the region of an example test that compiles and runs it,
// or a region has no block.
func TestReadmeBlocksAreExamples(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "example_readme_test.go" {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	regs := map[int]string{}
	where := map[int]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := regions(string(src))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for n, body := range r {
			if where[n] != "" {
				t.Fatalf("block %d in %s and %s", n, where[n], f)
			}
			regs[n], where[n] = body, f
		}
	}
	blocks := goBlocks(string(md))
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```go block")
	}
	for i, b := range blocks {
		n := i + 1
		r, ok := regs[n]
		if !ok {
			t.Errorf("README.md go block %d has no example region (// README.md go block %d)", n, n)
			continue
		}
		if r != b {
			t.Errorf("README.md go block %d differs from its region in %s:\n--- README.md\n%s\n--- example\n%s", n, where[n], b, r)
		}
	}
	for n := range regs {
		if n > len(blocks) {
			t.Errorf("%s: region %d has no README.md go block", where[n], n)
		}
	}
}

// TestRegionsAndBlocks checks the parsing on small inputs: a changed line
// is a difference, indentation is the marker's.
func TestRegionsAndBlocks(t *testing.T) {
	md := "text\n```go\na := 1\nif a > 0 {\n\tb()\n}\n```\n```sh\nls\n```\n"
	src := "func f() {\n\t// README.md go block 1\n\ta := 1\n\tif a > 0 {\n\t\tb()\n\t}\n\t// end of README.md go block\n}\n"
	blocks := goBlocks(md)
	r, err := regions(src)
	if err != nil || len(blocks) != 1 || r[1] != blocks[0] {
		t.Fatalf("blocks %q, regions %v, err %v", blocks, r, err)
	}
	changed, _ := regions(strings.Replace(src, "a := 1", "a := 2", 1))
	if changed[1] == blocks[0] {
		t.Error("a changed line goes unnoticed")
	}
	if _, err := regions("\t// README.md go block 1\n\tx()\n"); err == nil {
		t.Error("a region without its end marker is accepted")
	}
}
