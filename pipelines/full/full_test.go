package main

import (
	"context"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
	"github.com/dpopflow/dpopflow/train/report"
)

func TestMain(m *testing.M) { ptest.MainWithDefault(m, "prism") }

// smallOptions is the default run shrunk so a test finishes in seconds: the
// same stages, fewer pairs and steps.
func smallOptions(out string) options {
	o := defaultOptions()
	o.Output = out
	o.Math, o.ARC = 120, 30
	o.Model.NPositions = 96
	o.SFTSteps, o.Steps = 30, 6
	o.Batch = 8
	o.EvalSteps, o.EvalGenerations = 3, 4
	o.Quiet = true
	return o
}

// TestFullEndToEnd runs every stage for real and checks that each artifact a
// user would open exists and agrees with the others.
func TestFullEndToEnd(t *testing.T) {
	out := t.TempDir()
	o := smallOptions(out)
	summary, err := run(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, filepath.Join(out, "report.html")) {
		t.Errorf("terminal summary does not point at the report:\n%s", summary)
	}

	// The preprocessing manifest reconciles, and its shards hold what it says.
	for _, dir := range []string{"prepared", "scored"} {
		data, err := os.ReadFile(filepath.Join(out, dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := schemas.ParseManifest(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Counts.Check(); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		var rows int64
		for _, sh := range m.Shards {
			b, err := os.ReadFile(filepath.Join(out, dir, sh.Path))
			if err != nil {
				t.Fatal(err)
			}
			meta, got, err := schemas.DecodeArrowFile(b)
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, sh.Path, err)
			}
			if int64(len(got)) != sh.Rows {
				t.Errorf("%s/%s: %d rows, manifest says %d", dir, sh.Path, len(got), sh.Rows)
			}
			if dir == "scored" && meta.RefModel == "" {
				t.Errorf("%s/%s: scored shard has no ref_model metadata", dir, sh.Path)
			}
			rows += int64(len(got))
		}
		if rows != m.Counts.Written {
			t.Errorf("%s: shards hold %d rows, manifest written %d", dir, rows, m.Counts.Written)
		}
		// Generated data: 120 math + 90 ARC pairs, plus duplicates.
		if m.Counts.Written != 210 {
			t.Errorf("%s: written %d, want 210 (120 math + 30×3 ARC)", dir, m.Counts.Written)
		}
	}

	// Every checkpoint loads.
	for _, dir := range []string{"sft/final", "dpo/final", "dpop/final"} {
		if _, err := gpt.Load(filepath.Join(out, dir)); err != nil {
			t.Errorf("checkpoint %s: %v", dir, err)
		}
	}
	// Metrics files parse and have the configured number of steps.
	for dir, steps := range map[string]float64{"sft": 30, "dpo": 6, "dpop": 6} {
		rows, err := report.ReadMetrics(filepath.Join(out, dir, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		last := 0.0
		for _, r := range rows {
			last = max(last, r["step"])
		}
		if last != steps {
			t.Errorf("%s: metrics reach step %v, want %v", dir, last, steps)
		}
	}

	// The summary carries the report's figures, and the report links every plot.
	var s map[string]any
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"post_edit_logp", "eval_accuracy"} {
		m, ok := s[key].(map[string]any)
		if !ok {
			t.Fatalf("summary.json: %s missing", key)
		}
		for _, method := range []string{"reference", "dpo", "dpop"} {
			if _, ok := m[method].(float64); !ok {
				t.Errorf("summary.json: %s.%s is %v, want a number", key, method, m[method])
			}
		}
	}
	if _, ok := s["wall_seconds"].(float64); !ok {
		t.Error("summary.json: wall_seconds missing")
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, plot := range []string{"counts", "edit_distance", "training_curves", "figure4", "accuracy"} {
		rel := "plots/" + plot + ".png"
		if !strings.Contains(string(html), rel) {
			t.Errorf("report.html does not show %s", rel)
		}
		f, err := os.Open(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Error(err)
	}

	// A rerun finds every stage complete and reuses it.
	p2, err := run(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(p2, "(reused)"); n < 5 {
		t.Errorf("rerun reused %d stages, want generate, preprocess, SFT, score, DPOP, DPO reused:\n%s", n, p2)
	}
	// A changed setting reruns what depends on it, not what comes before.
	o.Steps = 7
	p3, err := run(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(p3, "\n") {
		if strings.Contains(line, "train DP") && strings.Contains(line, "(reused)") {
			t.Errorf("after changing --max_steps, training was reused: %q", line)
		}
		if strings.Contains(line, "SFT") && !strings.Contains(line, "(reused)") {
			t.Errorf("after changing --max_steps, SFT was not reused: %q", line)
		}
	}
}
