package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestResultOutputs(t *testing.T) {
	r := newResult("demo")
	r.Metrics["x_samples_per_s"] = 100
	r.Metrics["x_vs_y_ratio"] = 0.5
	r.target("x_vs_y_ratio", ">=", 0.8)
	r.target("x_samples_per_s", "<=", 200)
	r.Tables = append(r.Tables, Table{Title: "t", Columns: []string{"a", "bb"}, Rows: [][]string{{"1", "2"}}})
	r.Series["rate"] = []Point{{0, 1}, {1, 3}, {2, 2}}
	r.Series["flat"] = []Point{{0, 0}, {2, 0}}
	r.finish()
	if r.Machine.Cores < 1 || r.Machine.MemoryBytes <= 0 || r.Command == "" {
		t.Fatalf("machine or command missing: %+v %q", r.Machine, r.Command)
	}
	if r.Targets[0].Met || !r.Targets[1].Met {
		t.Fatalf("targets judged wrong: %+v", r.Targets)
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	ratios := 0
	for k := range back["metrics"].(map[string]any) {
		if strings.HasSuffix(k, "_ratio") {
			ratios++
		}
	}
	if ratios != 1 {
		t.Fatalf("%d ratio keys in %s", ratios, js.String())
	}
	var txt bytes.Buffer
	r.WriteText(&txt)
	if !strings.Contains(txt.String(), "target: x_vs_y_ratio >= 0.8: got 0.5: MISSED") || !strings.Contains(txt.String(), "  1   2\n") {
		t.Fatalf("text output:\n%s", txt.String())
	}
	var svg bytes.Buffer
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if strings.Count(svg.String(), "<path") != 2 || !strings.Contains(svg.String(), ">rate<") {
		t.Fatalf("svg:\n%s", svg.String())
	}
}
