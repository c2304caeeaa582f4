package report

import (
	"bytes"
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// view is what both pages show, already formatted, so HTML and Markdown
// cannot disagree.
type view struct {
	Headline, Accuracy, Paper, Meaning string
	Columns                            []string // method labels, then the deltas
	Results                            [][]string
	Counts                             [][]string // step, records, share of read
	Edit                               [][2]string
	Plots                              []plotRef
	Settings                           [][2]string
	Stages                             [][2]string
	Wall                               string
}

type plotRef struct{ Path, Caption string }

var captions = map[string]string{
	PlotFigure4:        "The paper's Figure-4 measure, this run beside the paper's MetaMath numbers.",
	PlotAccuracy:       "Greedy-decoding accuracy on the eval split.",
	PlotTrainingCurves: "Training curves. Dashed: the reference model's level (for batch log-probs, the runs' first step, where the policy still equals the reference).",
	PlotCounts:         "What each preprocessing step kept and dropped.",
	PlotEditDistance:   "Edit ratio of chosen vs rejected; the dashed line is the low-distance threshold.",
}

func newView(d Data, s Summary) view {
	v := view{Headline: s.Headline, Accuracy: accuracySentence(d.Accuracy), Paper: paperSentence(d.Figure4)}

	ms := methods(d.Figure4, d.PreEdit, d.HighDistance, d.Accuracy)
	v.Columns = append([]string{"measure"}, labels(ms)...)
	v.Columns = append(v.Columns, "DPO − reference", "DPOP − reference")
	addRow := func(name string, m Measure, f func(float64) string) {
		row := []string{name}
		for _, k := range ms {
			row = append(row, cell(m, k, f))
		}
		rate := name == accuracyRow
		row = append(row, delta(m, DPO, rate), delta(m, DPOP, rate))
		v.Results = append(v.Results, row)
	}
	addRow("log-prob after the edit, low-distance pairs (Figure 4)", d.Figure4, num)
	addRow("paper, MetaMath (Figure 4)", PaperPostEditLogp, num)
	if anyValue(d.PreEdit) {
		addRow("log-prob before the edit, low-distance pairs", d.PreEdit, num)
	}
	if anyValue(d.HighDistance) {
		addRow("log-prob after the edit, high-distance pairs", d.HighDistance, num)
	}
	if anyValue(d.Accuracy) {
		addRow(accuracyRow, d.Accuracy, pct)
	}

	c := d.Manifest.Counts
	share := func(n int64) string {
		if c.Read == 0 {
			return ""
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(c.Read))
	}
	v.Counts = append(v.Counts, []string{"read", fmt.Sprint(c.Read), share(c.Read)})
	for _, r := range sortedReasons(d.Manifest.RejectsByReason) {
		n := d.Manifest.RejectsByReason[r]
		v.Counts = append(v.Counts, []string{"rejected: " + r, fmt.Sprint(n), share(n)})
	}
	if len(d.Manifest.RejectsByReason) == 0 {
		v.Counts = append(v.Counts, []string{"rejected", fmt.Sprint(c.Rejected), share(c.Rejected)})
	}
	v.Counts = append(v.Counts,
		[]string{"duplicates", fmt.Sprint(c.Duplicates), share(c.Duplicates)},
		[]string{"written", fmt.Sprint(c.Written), share(c.Written)},
		[]string{"— train", fmt.Sprint(c.Train), share(c.Train)},
		[]string{"— eval", fmt.Sprint(c.Eval), share(c.Eval)},
		[]string{"— low distance", fmt.Sprint(c.LowDistance), share(c.LowDistance)},
	)
	if c.Truncated > 0 {
		v.Counts = append(v.Counts, []string{"— truncated", fmt.Sprint(c.Truncated), share(c.Truncated)})
	}
	if err := c.Check(); err != nil && c.Read > 0 {
		v.Counts = append(v.Counts, []string{"warning", err.Error(), ""})
	}

	es := d.Manifest.EditDistance
	v.Edit = [][2]string{
		{"low-distance threshold (edit ratio ≤)", fmt.Sprintf("%.2f", es.LowDistanceRatio)},
		{"low-distance pairs", pct(es.LowDistanceFraction)},
		{"mean token edit distance", fmt.Sprintf("%.1f", es.MeanDistance)},
		{"mean edit ratio", fmt.Sprintf("%.3f", es.MeanRatio)},
	}

	for _, p := range s.Plots {
		v.Plots = append(v.Plots, plotRef{Path: p, Caption: captions[p]})
	}
	keys := make([]string, 0, len(d.Settings))
	for k := range d.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.Settings = append(v.Settings, [2]string{k, d.Settings[k]})
	}
	for _, st := range d.Stages {
		t := fmt.Sprintf("%.1f s", st.Seconds)
		if st.Skipped {
			t = "skipped (reused)"
		}
		v.Stages = append(v.Stages, [2]string{st.Name, t})
	}
	v.Wall = fmt.Sprintf("%.1f s", d.WallSeconds)
	v.Meaning = meaning(d)
	return v
}

func labels(ms []string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = methodLabel(m)
	}
	return out
}

func cell(m Measure, k string, f func(float64) string) string {
	if x, ok := m.get(k); ok {
		return f(x)
	}
	return "n/a"
}

const accuracyRow = "eval accuracy (greedy)"

// delta is k's change from the reference: percentage points for a rate,
// log-prob otherwise.
func delta(m Measure, k string, rate bool) string {
	ref, okR := m.get(Reference)
	x, ok := m.get(k)
	if !okR || !ok {
		return "n/a"
	}
	if rate {
		return minus(fmt.Sprintf("%+.0f pts", 100*(x-ref)))
	}
	return signed(x - ref)
}

// meaning explains the paper's point and says, from the numbers, where this
// run stands.
func meaning(d Data) string {
	s := "DPO rewards the policy for raising the chosen answer relative to the rejected one, measured against a frozen reference. " +
		"When the two differ in a few tokens, as in a math solution with one wrong step, the cheapest way to widen that gap can be to lower both, " +
		"so the preferred answer ends up less likely than before training: the tokens after the edit are the ones that suffer. " +
		"DPOP adds a penalty, λ·max(0, reference − policy log-likelihood of the chosen answer), which removes that escape route. "
	ref, okR := d.Figure4.get(Reference)
	dpo, okD := d.Figure4.get(DPO)
	dpop, okP := d.Figure4.get(DPOP)
	if !okR || !okD {
		return s + "This run did not measure both the reference and DPO, so it cannot say whether the failure mode appeared."
	}
	s += verdict(ref, dpo, okD, dpop, okP)
	if pre, ok := d.PreEdit.get(DPO); ok {
		if pr, ok := d.PreEdit.get(Reference); ok {
			s += fmt.Sprintf(" Before the edit, DPO moved the chosen tokens' log-prob by %s, against %s after it", signed(pre-pr), signed(dpo-ref))
			if pre-pr > dpo-ref+notable {
				s += ": the drop is concentrated after the edit, as the paper explains."
			} else {
				s += "."
			}
		}
	}
	return s
}

var pageTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>dpopflow report</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.headline{font-size:1.15em;background:#f4f6fa;border-left:4px solid #1f77b4;padding:.7em 1em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ddd;padding:.3em .7em;text-align:right} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:.9em}
.muted{color:#666;font-size:.9em}
</style></head><body>
<h1>dpopflow report</h1>
<p class="headline">{{.Headline}}</p>
{{if .Accuracy}}<p>{{.Accuracy}}</p>{{end}}
<p>{{.Paper}}</p>
<h2>Results</h2>
<table><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Results}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{range .Plots}}<figure><img src="{{.Path}}" alt="{{.Caption}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}
<h2>Data</h2>
<table><tr><th>step</th><th>records</th><th>of read</th></tr>
{{range .Counts}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<table>{{range .Edit}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>
<h2>What this means</h2>
<p>{{.Meaning}}</p>
<h2>Settings</h2>
{{if .Settings}}<table>{{range .Settings}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>{{else}}<p class="muted">none recorded</p>{{end}}
<h2>Stage times</h2>
<table>{{range .Stages}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}<tr><th>total wall time</th><th>{{.Wall}}</th></tr></table>
<p class="muted">Paper values: ` + PaperSource + `.</p>
</body></html>
`))

func renderHTML(v view) ([]byte, error) {
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("render report.html: %w", err)
	}
	return b.Bytes(), nil
}

func renderMarkdown(v view) []byte {
	var b bytes.Buffer
	table := func(header []string, rows [][]string) {
		b.WriteString("| " + strings.Join(mdEscape(header), " | ") + " |\n|")
		for i := range header {
			if i == 0 {
				b.WriteString(" --- |")
			} else {
				b.WriteString(" ---: |")
			}
		}
		b.WriteString("\n")
		for _, r := range rows {
			b.WriteString("| " + strings.Join(mdEscape(r), " | ") + " |\n")
		}
		b.WriteString("\n")
	}
	pairs := func(ps [][2]string) [][]string {
		out := make([][]string, len(ps))
		for i, p := range ps {
			out[i] = []string{p[0], p[1]}
		}
		return out
	}
	fmt.Fprintf(&b, "# dpopflow report\n\n**%s**\n\n", v.Headline)
	if v.Accuracy != "" {
		fmt.Fprintf(&b, "%s\n\n", v.Accuracy)
	}
	fmt.Fprintf(&b, "%s\n\n## Results\n\n", v.Paper)
	table(v.Columns, v.Results)
	for _, p := range v.Plots {
		fmt.Fprintf(&b, "![%s](%s)\n\n*%s*\n\n", p.Caption, p.Path, p.Caption)
	}
	b.WriteString("## Data\n\n")
	table([]string{"step", "records", "of read"}, v.Counts)
	table([]string{"edit distance", "value"}, pairs(v.Edit))
	fmt.Fprintf(&b, "## What this means\n\n%s\n\n## Settings\n\n", v.Meaning)
	if len(v.Settings) > 0 {
		table([]string{"setting", "value"}, pairs(v.Settings))
	} else {
		b.WriteString("none recorded\n\n")
	}
	b.WriteString("## Stage times\n\n")
	table([]string{"stage", "wall time"}, append(pairs(v.Stages), []string{"**total**", "**" + v.Wall + "**"}))
	fmt.Fprintf(&b, "Paper values: %s.\n", PaperSource)
	return b.Bytes()
}

// mdEscape keeps a cell from breaking the table.
func mdEscape(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return out
}
