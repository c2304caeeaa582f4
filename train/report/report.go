// Package report turns a finished dpopflow run into something a person reads:
// report.html (self-contained, inline CSS), report.md, summary.json for
// machines, and PNG plots under plots/.
//
// The report's job is the paper's question: did plain DPO lower the
// likelihood of the preferred answer on low-edit-distance pairs (Smaug,
// arXiv 2402.13228, Figure 4), and did DPOP prevent it? Every sentence that
// answers it is derived from the numbers given, never assumed, so a run where
// DPO behaves well says so.
//
// The package reads files (metrics.jsonl) and writes files; it imports no
// Beam and no model.
package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dpopflow/dpopflow/schemas"
)

// Method names, the keys of a Measure. Run names use "sft" for the stage that
// produces the reference model; its measures are under Reference.
const (
	Reference = "reference"
	DPO       = "dpo"
	DPOP      = "dpop"
)

// Measure is one quantity measured for several models, keyed by method
// (Reference, DPO, DPOP, or another such as "ipo"). A missing key means the
// quantity was not measured for that model (a skipped stage), which the
// report shows as "n/a" rather than as a number.
type Measure map[string]float64

// get returns m[k] and whether it is a usable number.
func (m Measure) get(k string) (float64, bool) {
	v, ok := m[k]
	return v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// PaperPostEditLogp holds the values the paper publishes for its Figure-4
// measure on MetaMath (Pal et al., "Smaug: Fixing Failure Modes of Preference
// Optimisation with DPO-Positive", arXiv 2402.13228): the mean per-token
// log-probability of the chosen completion from the first differing token on.
var PaperPostEditLogp = Measure{Reference: -0.37, DPO: -1.82, DPOP: -0.26}

// PaperSource cites PaperPostEditLogp.
const PaperSource = "Pal et al. 2024, Smaug (arXiv 2402.13228), Figure 4, MetaMath"

// MetricRow is one line of metrics.jsonl with its numeric fields, under
// TRL's names ("loss", "rewards/margins", "eval/post_edit_logp", "step"...).
type MetricRow map[string]float64

// Run is one training run's metrics, in the order they were logged.
type Run struct {
	Name    string // "sft", "dpo", "dpop", ...
	Metrics []MetricRow
}

// Stage is the wall time of one pipeline stage.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Skipped bool    `json:"skipped,omitempty"` // e.g. reused from an earlier run
}

// Data is everything a report shows.
type Data struct {
	// Manifest is the preprocessing output's manifest: counts, rejects by
	// reason, edit-distance statistics.
	Manifest schemas.Manifest
	Runs     []Run
	// Figure4 is the paper's measure: mean per-token log-prob of chosen tokens
	// from first_diff on, over low-distance eval pairs.
	Figure4 Measure
	// PreEdit is the same over the tokens before first_diff, and HighDistance
	// the Figure-4 measure over high-distance pairs: the controls that show
	// where a drop happens.
	PreEdit, HighDistance Measure
	// Accuracy is the eval accuracy of greedy decoding (final answer correct).
	Accuracy    Measure
	Stages      []Stage
	Settings    map[string]string // beta, lambda, lr, steps, model size...
	WallSeconds float64
}

// ReadMetrics reads a JSON-lines metrics file. Non-numeric fields (a run
// name, a timestamp string) are dropped; blank lines are skipped.
func ReadMetrics(path string) ([]MetricRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer f.Close()
	var rows []MetricRow
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		row, _, err := parseRow(line)
		if err != nil {
			return nil, fmt.Errorf("read metrics %s line %d: %w", path, n, err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics %s: %w", path, err)
	}
	return rows, nil
}

// ReadRuns reads a metrics file that holds several runs, telling them apart
// by a string field "run" (or "method"). Rows without one go to a run named
// after the file. Runs come back in the order they first appear.
func ReadRuns(path string) ([]Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	fallback := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var runs []Run
	index := map[string]int{}
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		row, name, err := parseRow(line)
		if err != nil {
			return nil, fmt.Errorf("read metrics %s line %d: %w", path, n+1, err)
		}
		if name == "" {
			name = fallback
		}
		i, ok := index[name]
		if !ok {
			i = len(runs)
			index[name] = i
			runs = append(runs, Run{Name: name})
		}
		runs[i].Metrics = append(runs[i].Metrics, row)
	}
	return runs, nil
}

func parseRow(line []byte) (MetricRow, string, error) {
	var raw map[string]any
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, "", err
	}
	row := MetricRow{}
	name := ""
	for k, v := range raw {
		switch v := v.(type) {
		case float64:
			row[k] = v
		case string:
			if k == "run" || (k == "method" && name == "") {
				name = v
			}
		}
	}
	return row, name, nil
}

// Summary is what summary.json holds. Measures always carry the reference,
// dpo and dpop keys, null where not measured.
type Summary struct {
	Headline          string               `json:"headline"`
	PostEditLogp      Measure              `json:"post_edit_logp"`
	PreEditLogp       Measure              `json:"pre_edit_logp"`
	HighDistanceLogp  Measure              `json:"high_distance_logp"`
	EvalAccuracy      Measure              `json:"eval_accuracy"`
	PaperPostEditLogp Measure              `json:"paper_post_edit_logp"`
	PaperSource       string               `json:"paper_source"`
	Counts            schemas.Counts       `json:"counts"`
	RejectsByReason   map[string]int64     `json:"rejects_by_reason"`
	EditDistance      schemas.EditStats    `json:"edit_distance"`
	FinalMetrics      map[string]MetricRow `json:"final_metrics"` // last training row of each run
	Stages            []Stage              `json:"stages"`
	WallSeconds       float64              `json:"wall_seconds"`
	Settings          map[string]string    `json:"settings"`
	Plots             []string             `json:"plots"` // relative paths, e.g. "plots/figure4.png"
}

// MarshalJSON writes the three standard methods of every measure (null when
// missing) and drops values JSON cannot carry (NaN, ±Inf).
func (m Measure) MarshalJSON() ([]byte, error) {
	out := map[string]*float64{Reference: nil, DPO: nil, DPOP: nil}
	for k := range m {
		if v, ok := m.get(k); ok {
			out[k] = &v
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes, leaving nulls out.
func (m *Measure) UnmarshalJSON(b []byte) error {
	var in map[string]*float64
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*m = Measure{}
	for k, v := range in {
		if v != nil {
			(*m)[k] = *v
		}
	}
	return nil
}

// Write writes dir/report.html, dir/report.md, dir/summary.json and
// dir/plots/*.png. Plots with no data are not drawn (and a stale one of the
// same name is removed), and the pages link only the plots that exist.
func Write(dir string, d Data) (Summary, error) {
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		return Summary{}, fmt.Errorf("write report: %w", err)
	}
	plots, err := writePlots(dir, d)
	if err != nil {
		return Summary{}, err
	}
	s := summarize(d, plots)
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return Summary{}, fmt.Errorf("write report: encode summary.json: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "summary.json"), append(js, '\n')); err != nil {
		return Summary{}, err
	}
	v := newView(d, s)
	html, err := renderHTML(v)
	if err != nil {
		return Summary{}, err
	}
	if err := writeFile(filepath.Join(dir, "report.html"), html); err != nil {
		return Summary{}, err
	}
	if err := writeFile(filepath.Join(dir, "report.md"), renderMarkdown(v)); err != nil {
		return Summary{}, err
	}
	return s, nil
}

func summarize(d Data, plots []string) Summary {
	final := map[string]MetricRow{}
	for _, r := range d.Runs {
		if rows := trainRows(r.Metrics); len(rows) > 0 {
			last := MetricRow{}
			for k, v := range rows[len(rows)-1] {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					last[k] = v
				}
			}
			final[r.Name] = last
		}
	}
	stages := d.Stages
	if stages == nil {
		stages = []Stage{}
	}
	settings := d.Settings
	if settings == nil {
		settings = map[string]string{}
	}
	rejects := d.Manifest.RejectsByReason
	if rejects == nil {
		rejects = map[string]int64{}
	}
	return Summary{
		Headline:          Headline(d),
		PostEditLogp:      orEmpty(d.Figure4),
		PreEditLogp:       orEmpty(d.PreEdit),
		HighDistanceLogp:  orEmpty(d.HighDistance),
		EvalAccuracy:      orEmpty(d.Accuracy),
		PaperPostEditLogp: PaperPostEditLogp,
		PaperSource:       PaperSource,
		Counts:            d.Manifest.Counts,
		RejectsByReason:   rejects,
		EditDistance:      d.Manifest.EditDistance,
		FinalMetrics:      final,
		Stages:            stages,
		WallSeconds:       d.WallSeconds,
		Settings:          settings,
		Plots:             plots,
	}
}

func orEmpty(m Measure) Measure {
	if m == nil {
		return Measure{}
	}
	return m
}

// isEval tells eval rows (any "eval/" key) from training rows.
func isEval(r MetricRow) bool {
	for k := range r {
		if strings.HasPrefix(k, "eval/") {
			return true
		}
	}
	return false
}

func trainRows(rows []MetricRow) []MetricRow {
	var out []MetricRow
	for _, r := range rows {
		if !isEval(r) {
			out = append(out, r)
		}
	}
	return out
}

func evalRows(rows []MetricRow) []MetricRow {
	var out []MetricRow
	for _, r := range rows {
		if isEval(r) {
			out = append(out, r)
		}
	}
	return out
}

// writeFile writes beside the target and renames, so a reader (or a browser
// refreshing the report) never sees half a file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	return nil
}

// methods lists a measure's methods: the standard three first, then others.
func methods(ms ...Measure) []string {
	out := []string{Reference, DPO, DPOP}
	var extra []string
	seen := map[string]bool{Reference: true, DPO: true, DPOP: true}
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}
