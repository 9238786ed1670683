package pgtest

import (
	"encoding/json"
	"fmt"
)

// Plan is the part of EXPLAIN (FORMAT JSON) that plan tests read: what each
// node is, what it reads, and (with ANALYZE) how many rows it produced.
// Tests assert plans rather than timings: with autovacuum off a table may
// never have been analyzed, and the plan is what must not depend on it.
type Plan struct {
	NodeType string   `json:"Node Type"`
	Relation string   `json:"Relation Name"`
	Index    string   `json:"Index Name"`
	Rows     float64  `json:"Actual Rows"`
	Loops    float64  `json:"Actual Loops"`
	Output   []string `json:"Output"`
	Plans    []Plan   `json:"Plans"`
}

// ParsePlan decodes the output of EXPLAIN (FORMAT JSON) of one statement.
func ParsePlan(raw []byte) (Plan, error) {
	var out []struct{ Plan Plan }
	if err := json.Unmarshal(raw, &out); err != nil {
		return Plan{}, err
	}
	if len(out) != 1 {
		return Plan{}, fmt.Errorf("pgtest: %d plans in %s, want 1", len(out), raw)
	}
	return out[0].Plan, nil
}

// Walk calls fn on the node and every node below it.
func (p Plan) Walk(fn func(Plan)) {
	fn(p)
	for _, c := range p.Plans {
		c.Walk(fn)
	}
}

// RowsRead is how many rows the node produced over all its loops.
func (p Plan) RowsRead() float64 { return p.Rows * max(p.Loops, 1) }
