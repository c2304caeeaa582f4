package report

import (
	"bytes"
	"encoding/json"
	stdhtml "html"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
)

// testData is a plausible finished run: DPO lowers the post-edit log-prob by
// drop, DPOP moves it by dpopMove.
func testData(drop, dpopMove float64) Data {
	curve := func(name string, steps int, chosenSlope float64, penalty bool) Run {
		r := Run{Name: name}
		for s := 0; s <= steps; s += 5 {
			f := float64(s) / float64(steps)
			row := MetricRow{
				"step": float64(s), "loss": 0.693 * math.Exp(-2*f), "rewards/margins": 3 * f,
				"rewards/accuracies": 0.5 + 0.45*f, "logps/chosen": -14 + chosenSlope*f, "logps/rejected": -15 - 20*f,
				"rewards/chosen": 0.3 * chosenSlope * f, "rewards/rejected": -6 * f, "grad_norm": 1, "learning_rate": 3e-4,
				"epoch": f,
			}
			if penalty {
				row["dpop/penalty"] = 0.1 * (1 - f)
			}
			r.Metrics = append(r.Metrics, row)
			if s%25 == 0 {
				r.Metrics = append(r.Metrics, MetricRow{"step": float64(s), "eval/loss": 0.6,
					"eval/post_edit_logp": -0.3 + chosenSlope/20*f, "eval/ref_post_edit_logp": -0.3, "eval/accuracy": 0.5})
			}
		}
		return r
	}
	sft := Run{Name: "sft"}
	for s := 0; s <= 1000; s += 50 {
		sft.Metrics = append(sft.Metrics, MetricRow{"step": float64(s), "loss": 5.5*math.Exp(-float64(s)/200) + 0.4})
	}
	hist := make([]schemas.Bin, 20)
	for i := range hist {
		hist[i] = schemas.Bin{Lo: float64(i) / 20, Hi: float64(i+1) / 20, Count: int64(100 * math.Exp(-math.Abs(float64(i)-2)))}
	}
	hist[12].Count = 300
	return Data{
		Manifest: schemas.Manifest{
			Counts: schemas.Counts{Read: 1976, Rejected: 19, Duplicates: 57, Written: 1900, LowDistance: 1000, Train: 1805, Eval: 95},
			RejectsByReason: map[string]int64{"invalid_json": 4, "missing_field": 3, "wrong_type": 3,
				"empty_completion": 3, "invalid_utf8": 3, "degenerate": 3},
			EditDistance: schemas.EditStats{LowDistanceRatio: 0.15, LowDistanceFraction: 0.53, MeanDistance: 3.2,
				MeanRatio: 0.21, RatioHistogram: hist},
		},
		Runs:         []Run{sft, curve("dpo", 100, -6, false), curve("dpop", 100, 0.5, true)},
		Figure4:      Measure{Reference: -0.31, DPO: -0.31 - drop, DPOP: -0.31 + dpopMove},
		PreEdit:      Measure{Reference: -0.20, DPO: -0.25, DPOP: -0.20},
		HighDistance: Measure{Reference: -0.9, DPO: -1.1, DPOP: -0.88},
		Accuracy:     Measure{Reference: 0.46, DPO: 0.13, DPOP: 0.45},
		Stages: []Stage{{Name: "synth", Seconds: 0.2}, {Name: "preprocess", Seconds: 12.5},
			{Name: "sft", Seconds: 61}, {Name: "dpo", Seconds: 14}, {Name: "dpop", Seconds: 15, Skipped: false}},
		Settings:    map[string]string{"beta": "0.3", "lambda": "50", "lr": "3e-4", "steps": "100", "model": "d=32, 2 layers, 4 heads"},
		WallSeconds: 103.2,
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	d := testData(0.61, 0.01)
	s, err := Write(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{PlotCounts, PlotEditDistance, PlotTrainingCurves, PlotFigure4, PlotAccuracy}
	if len(s.Plots) != len(all) {
		t.Fatalf("plots %v, want all of %v", s.Plots, all)
	}
	html := stdhtml.UnescapeString(read(t, dir, "report.html"))
	md := read(t, dir, "report.md")
	for _, p := range all {
		f, err := os.Open(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 250 {
			t.Errorf("%s is %v: too small to read", p, b)
		}
		if !strings.Contains(html, `src="`+p+`"`) || !strings.Contains(md, "]("+p+")") {
			t.Errorf("%s is not linked from report.html and report.md", p)
		}
	}

	// Every image on disk is linked, not just the ones the code knows of.
	entries, err := os.ReadDir(filepath.Join(dir, "plots"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.Contains(html, `src="plots/`+e.Name()+`"`) {
			t.Errorf("plots/%s exists but report.html does not show it", e.Name())
		}
	}

	var got map[string]any
	if err := json.Unmarshal([]byte(read(t, dir, "summary.json")), &got); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	want := map[string]map[string]float64{
		"post_edit_logp":       {"reference": -0.31, "dpo": -0.92, "dpop": -0.30},
		"eval_accuracy":        {"reference": 0.46, "dpo": 0.13, "dpop": 0.45},
		"paper_post_edit_logp": {"reference": -0.37, "dpo": -1.82, "dpop": -0.26},
	}
	for key, vals := range want {
		m, ok := got[key].(map[string]any)
		if !ok {
			t.Fatalf("summary.json has no object %q: %v", key, got[key])
		}
		for k, v := range vals {
			if x, ok := m[k].(float64); !ok || math.Abs(x-v) > 1e-9 {
				t.Errorf("summary.json %s.%s = %v, want %v", key, k, m[k], v)
			}
		}
	}
	if got["wall_seconds"] != 103.2 {
		t.Errorf("wall_seconds %v", got["wall_seconds"])
	}
	counts, _ := got["counts"].(map[string]any)
	if counts["read"] != 1976.0 || counts["written"] != 1900.0 {
		t.Errorf("counts %v", counts)
	}
	if st, _ := got["stages"].([]any); len(st) != 5 {
		t.Errorf("stages %v", got["stages"])
	}

	// The headline states the numbers of this run, in both pages.
	for _, want := range []string{"fell from \u22120.31 to \u22120.92 (\u22120.61)", "rose from \u22120.31 to \u22120.30 (+0.01)"} {
		if !strings.Contains(s.Headline, want) || !strings.Contains(html, want) || !strings.Contains(md, want) {
			t.Errorf("headline %q (or a page) lacks %q", s.Headline, want)
		}
	}
	for _, want := range []string{"invalid_utf8", "1976", "lambda", "preprocess", "Smaug"} {
		if !strings.Contains(html, want) || !strings.Contains(md, want) {
			t.Errorf("a page lacks %q", want)
		}
	}
}

// TestHeadlineDerived: the words follow the data, so a run where DPO raises
// the measure and DPOP lowers it says exactly that.
func TestHeadlineDerived(t *testing.T) {
	fails := Headline(testData(0.61, 0.01))
	flipped := Headline(testData(-0.40, -0.30))
	if !strings.Contains(fails, "Under DPO the log-probability of chosen tokens after the edit fell") ||
		!strings.Contains(fails, "DPOP prevented it") {
		t.Errorf("failure-mode run: %q", fails)
	}
	if !strings.Contains(flipped, "after the edit rose from \u22120.31 to 0.09 (+0.40)") ||
		!strings.Contains(flipped, "under DPOP it fell") || !strings.Contains(flipped, "did not show the paper's failure mode") {
		t.Errorf("flipped run: %q", flipped)
	}
	same := Headline(testData(0.5, -0.48))
	if !strings.Contains(same, "did not prevent") {
		t.Errorf("DPOP dropping as much as DPO: %q", same)
	}
	none := Headline(Data{})
	if !strings.Contains(none, "not measured") {
		t.Errorf("no data: %q", none)
	}
}

// TestMissingData: a run with no training yet still writes a report, draws
// only the plots it has data for, and writes null, not 0, for what it lacks.
func TestMissingData(t *testing.T) {
	dir := t.TempDir()
	full := testData(0.6, 0)
	if _, err := Write(dir, full); err != nil {
		t.Fatal(err)
	}
	d := Data{Manifest: full.Manifest, Figure4: Measure{Reference: -0.3}}
	s, err := Write(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	html := read(t, dir, "report.html")
	for _, p := range []string{PlotTrainingCurves, PlotAccuracy} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s from the earlier run was left behind", p)
		}
		if strings.Contains(html, p) {
			t.Errorf("report.html links missing %s", p)
		}
	}
	for _, p := range s.Plots {
		if !strings.Contains(html, `src="`+p+`"`) {
			t.Errorf("report.html does not link %s", p)
		}
	}
	js := read(t, dir, "summary.json")
	if !regexp.MustCompile(`"eval_accuracy": \{\s*"dpo": null,\s*"dpop": null,\s*"reference": null`).MatchString(js) {
		t.Errorf("missing accuracy should be null:\n%s", js)
	}
	if !strings.Contains(s.Headline, "neither DPO nor DPOP") {
		t.Errorf("headline %q", s.Headline)
	}
}

func TestReadMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	data := `{"run":"dpo","step":0,"loss":0.693,"time":"12:00"}

{"run":"dpop","step":0,"loss":0.69,"dpop/penalty":0}
{"run":"dpo","step":10,"eval/post_edit_logp":-0.4,"ok":true}
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0]["loss"] != 0.693 || len(rows[0]) != 2 || rows[2]["eval/post_edit_logp"] != -0.4 {
		t.Fatalf("rows %v", rows)
	}
	runs, err := ReadRuns(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Name != "dpo" || len(runs[0].Metrics) != 2 || runs[1].Name != "dpop" {
		t.Fatalf("runs %+v", runs)
	}
	if err := os.WriteFile(path, []byte("{\"step\":1}\n{bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetrics(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v should name line 2", err)
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<!DOCTYPE")) && name == "report.html" {
		t.Fatalf("report.html does not start with a doctype")
	}
	return string(b)
}
