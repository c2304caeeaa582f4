package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot file names, relative to the report directory.
const (
	PlotCounts         = "plots/counts.png"
	PlotEditDistance   = "plots/edit_distance.png"
	PlotTrainingCurves = "plots/training_curves.png"
	PlotFigure4        = "plots/figure4.png"
	PlotAccuracy       = "plots/accuracy.png"
)

// One colour per method throughout, so a reader learns it once.
var (
	colRef     = color.RGBA{R: 0x70, G: 0x70, B: 0x70, A: 0xff}
	colDPO     = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colDPOP    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colSFT     = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colOther   = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colReject  = color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff}
	colDup     = color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff}
	colWritten = color.RGBA{R: 0x55, G: 0xa8, B: 0x68, A: 0xff}
	colSplit   = color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}
	colLow     = color.RGBA{R: 0x81, G: 0x72, B: 0xb2, A: 0xff}
	colHigh    = color.RGBA{R: 0xcc, G: 0xb9, B: 0x74, A: 0xff}
)

func methodColor(m string) color.Color {
	switch strings.ToLower(m) {
	case Reference:
		return colRef
	case DPO:
		return colDPO
	case DPOP:
		return colDPOP
	case "sft":
		return colSFT
	}
	return colOther
}

// pale mixes c with white, for the paper's bars beside ours.
func pale(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 { return uint8((v>>8)*2/5 + 255*3/5) }
	return color.RGBA{R: mix(r), G: mix(g), B: mix(b), A: 0xff}
}

// Plot sizes: large enough to read when the page shows them at 100%.
const dpi = 110

// writePlots draws every plot that has data and returns their relative
// paths; plots without data are removed so a rerun leaves no stale image.
func writePlots(dir string, d Data) ([]string, error) {
	type job struct {
		name string
		draw func(Data) (*canvasPlot, error)
	}
	jobs := []job{
		{PlotFigure4, figure4Plot},
		{PlotAccuracy, accuracyPlot},
		{PlotTrainingCurves, trainingCurves},
		{PlotCounts, countsPlot},
		{PlotEditDistance, editDistancePlot},
	}
	var written []string
	for _, j := range jobs {
		path := filepath.Join(dir, filepath.FromSlash(j.name))
		cp, err := j.draw(d)
		if err != nil {
			return nil, fmt.Errorf("draw %s: %w", j.name, err)
		}
		if cp == nil {
			if err := removeIfExists(path); err != nil {
				return nil, err
			}
			continue
		}
		if err := cp.save(path); err != nil {
			return nil, err
		}
		written = append(written, j.name)
	}
	return written, nil
}

// canvasPlot is a drawn image of a given size.
type canvasPlot struct {
	c *vgimg.Canvas
}

func single(p *plot.Plot, w, h vg.Length) *canvasPlot {
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	pad := vg.Points(8)
	p.Draw(draw.Crop(draw.New(c), pad, -pad, pad, -pad))
	return &canvasPlot{c}
}

func (cp *canvasPlot) save(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = vgimg.PngCanvas{Canvas: cp.c}.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 13
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Label.TextStyle.Font.Size = 11
	p.Y.Label.TextStyle.Font.Size = 11
	p.X.Tick.Label.Font.Size = 10
	p.Y.Tick.Label.Font.Size = 10
	p.Legend.TextStyle.Font.Size = 10
	return p
}

// rect is one bar: a filled rectangle in data coordinates, with an optional
// label drawn just beyond its far end.
type rect struct {
	x0, x1, y0, y1 float64
	fill           color.Color
	outline        color.Color // nil: none
	label          string
	horizontal     bool // label goes right of x1 (else above or below y1)
}

// rects is a plot.Plotter that draws bars, so each can have its own colour
// (plotter.BarChart has one colour per chart).
type rects []rect

func (rs rects) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := text.Style{
		Color:   color.Black,
		Font:    font.From(plot.DefaultFont, 9),
		Handler: p.TextHandler,
	}
	for _, r := range rs {
		pts := []vg.Point{
			{X: trX(r.x0), Y: trY(r.y0)}, {X: trX(r.x1), Y: trY(r.y0)},
			{X: trX(r.x1), Y: trY(r.y1)}, {X: trX(r.x0), Y: trY(r.y1)},
		}
		c.FillPolygon(r.fill, c.ClipPolygonXY(pts))
		if r.outline != nil {
			c.StrokeLines(draw.LineStyle{Color: r.outline, Width: vg.Points(0.8)},
				c.ClipLinesXY(append(pts, pts[0]))...)
		}
		if r.label == "" {
			continue
		}
		s := sty
		var at vg.Point
		switch {
		case r.horizontal:
			s.XAlign, s.YAlign = draw.XLeft, draw.YCenter
			at = vg.Point{X: trX(r.x1) + vg.Points(3), Y: trY((r.y0 + r.y1) / 2)}
		case r.y1 < r.y0: // a bar that hangs down: label under it
			s.XAlign, s.YAlign = draw.XCenter, draw.YTop
			at = vg.Point{X: trX((r.x0 + r.x1) / 2), Y: trY(r.y1) - vg.Points(2)}
		default:
			s.XAlign, s.YAlign = draw.XCenter, draw.YBottom
			at = vg.Point{X: trX((r.x0 + r.x1) / 2), Y: trY(r.y1) + vg.Points(2)}
		}
		c.FillText(s, at, r.label)
	}
}

func (rs rects) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for _, r := range rs {
		xmin = math.Min(xmin, math.Min(r.x0, r.x1))
		xmax = math.Max(xmax, math.Max(r.x0, r.x1))
		ymin = math.Min(ymin, math.Min(r.y0, r.y1))
		ymax = math.Max(ymax, math.Max(r.y0, r.y1))
	}
	return
}

// swatch is a legend thumbnail: a filled box.
type swatch struct{ fill, outline color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}}
	c.FillPolygon(s.fill, pts)
	if s.outline != nil {
		c.StrokeLines(draw.LineStyle{Color: s.outline, Width: vg.Points(0.8)}, append(pts, pts[0]))
	}
}

// padRange widens an axis by frac of its span on each side, so bar labels
// fit inside the plot.
func padRange(lo, hi, frac float64) (float64, float64) {
	span := hi - lo
	if span == 0 {
		span = 1
	}
	return lo - frac*span, hi + frac*span
}

// measureBars draws one group per method, ours (solid) and, when paper is
// given, the paper's (pale) beside it.
func measureBars(p *plot.Plot, ours, paper Measure, format func(float64) string) bool {
	var rs rects
	var names []string
	lo, hi := 0.0, 0.0
	x := 0.0
	for _, m := range methods(ours) {
		v, okO := ours.get(m)
		pv, okP := paper.get(m)
		if !okO && !okP {
			continue
		}
		names = append(names, methodLabel(m))
		c := methodColor(m)
		w := 0.7
		if paper != nil {
			w = 0.36
		}
		if okO {
			x0 := x - w/2
			if paper != nil {
				x0 = x - w - 0.01
			}
			rs = append(rs, rect{x0: x0, x1: x0 + w, y0: 0, y1: v, fill: c, label: format(v)})
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		} else {
			rs = append(rs, rect{x0: x - w - 0.01, x1: x - 0.01, y0: 0, y1: 0, fill: c, label: "n/a"})
		}
		if paper != nil && okP {
			rs = append(rs, rect{x0: x + 0.01, x1: x + 0.01 + w, y0: 0, y1: pv, fill: pale(c), outline: c, label: format(pv)})
			lo, hi = math.Min(lo, pv), math.Max(hi, pv)
		}
		x++
	}
	if len(names) == 0 || !anyValue(ours) {
		return false
	}
	p.Add(rs)
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	p.Y.Min, p.Y.Max = padRange(lo, hi, 0.12)
	if hi <= 0 {
		p.Y.Max = 0
	}
	if lo >= 0 {
		p.Y.Min = 0
	}
	zero, _ := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: 0}, {X: p.X.Max, Y: 0}})
	zero.LineStyle = draw.LineStyle{Color: color.Black, Width: vg.Points(0.6)}
	p.Add(zero)
	return true
}

func anyValue(m Measure) bool {
	for k := range m {
		if _, ok := m.get(k); ok {
			return true
		}
	}
	return false
}

func figure4Plot(d Data) (*canvasPlot, error) {
	// The key goes under the axis rather than in a legend box, which would
	// cover whichever bar hangs lowest.
	p := newPlot("Log-prob of chosen tokens after the edit (low-distance eval pairs)",
		"left, solid: this run    right, pale: paper (Smaug, MetaMath)", "mean per-token log-prob")
	p.X.Label.Padding = vg.Points(10)
	if !measureBars(p, d.Figure4, PaperPostEditLogp, num2) {
		return nil, nil
	}
	return single(p, 7.5*vg.Inch, 4.5*vg.Inch), nil
}

func accuracyPlot(d Data) (*canvasPlot, error) {
	p := newPlot("Eval accuracy (greedy decoding, final answer correct)", "", "accuracy")
	if !measureBars(p, d.Accuracy, nil, func(v float64) string { return pct(v) }) {
		return nil, nil
	}
	p.Y.Min, p.Y.Max = 0, 1.08
	return single(p, 6*vg.Inch, 4*vg.Inch), nil
}

func num2(v float64) string { return fmt.Sprintf("%.2f", v) }

// countsPlot is the datatrove-style funnel: what was read, what each step
// dropped and why, what was written.
func countsPlot(d Data) (*canvasPlot, error) {
	c := d.Manifest.Counts
	if c.Read == 0 && c.Written == 0 {
		return nil, nil
	}
	type item struct {
		name string
		n    int64
		col  color.Color
	}
	items := []item{{"read", c.Read, colRef}}
	for _, reason := range sortedReasons(d.Manifest.RejectsByReason) {
		items = append(items, item{"rejected: " + reason, d.Manifest.RejectsByReason[reason], colReject})
	}
	if len(d.Manifest.RejectsByReason) == 0 && c.Rejected > 0 {
		items = append(items, item{"rejected", c.Rejected, colReject})
	}
	items = append(items,
		item{"duplicates", c.Duplicates, colDup},
		item{"written", c.Written, colWritten},
		item{"written: train", c.Train, colSplit},
		item{"written: eval", c.Eval, colSplit},
		item{"written: low distance", c.LowDistance, colLow},
	)
	if c.Truncated > 0 {
		items = append(items, item{"written: truncated", c.Truncated, colDup})
	}
	p := newPlot("Preprocessing: records kept and dropped at each step", "records", "")
	var rs rects
	names := make([]string, len(items))
	var most int64
	for i, it := range items {
		// Top to bottom in pipeline order: NominalY puts the first name at y=0,
		// the bottom, so reverse.
		y := float64(len(items) - 1 - i)
		names[len(items)-1-i] = it.name
		rs = append(rs, rect{x0: 0, x1: float64(it.n), y0: y - 0.36, y1: y + 0.36, fill: it.col,
			label: fmt.Sprint(it.n), horizontal: true})
		most = max(most, it.n)
	}
	p.Add(rs)
	p.NominalY(names...)
	p.X.Min, p.X.Max = 0, float64(max(most, 1))*1.15
	p.Y.Min, p.Y.Max = -0.6, float64(len(items))-0.4
	h := vg.Length(1.2+0.32*float64(len(items))) * vg.Inch
	return single(p, 7.5*vg.Inch, h), nil
}

func sortedReasons(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}

// editDistancePlot is the histogram of edit_ratio, coloured by which side of
// the low-distance threshold each bin lies.
func editDistancePlot(d Data) (*canvasPlot, error) {
	es := d.Manifest.EditDistance
	if len(es.RatioHistogram) == 0 {
		return nil, nil
	}
	thr := es.LowDistanceRatio
	p := newPlot("Edit distance between chosen and rejected", "edit ratio (token edit distance / longer length)", "pairs")
	var rs rects
	var most int64
	for _, b := range es.RatioHistogram {
		col := colHigh
		if (b.Lo+b.Hi)/2 <= thr {
			col = colLow
		}
		rs = append(rs, rect{x0: b.Lo, x1: b.Hi, y0: 0, y1: float64(b.Count), fill: col, outline: color.White})
		most = max(most, b.Count)
	}
	p.Add(rs)
	p.X.Min, p.X.Max = es.RatioHistogram[0].Lo, es.RatioHistogram[len(es.RatioHistogram)-1].Hi
	// Headroom so the legend (top right) sits above the tallest bar.
	p.Y.Min, p.Y.Max = 0, float64(max(most, 1))*1.35
	if thr > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: thr, Y: 0}, {X: thr, Y: p.Y.Max}})
		if err != nil {
			return nil, err
		}
		l.LineStyle = draw.LineStyle{Color: color.Black, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("threshold %.2f", thr), l)
	}
	p.Legend.Add(fmt.Sprintf("low distance (%s of pairs)", pct(es.LowDistanceFraction)), swatch{fill: colLow})
	p.Legend.Add("high distance", swatch{fill: colHigh})
	p.Legend.Top = true
	return single(p, 7.5*vg.Inch, 4*vg.Inch), nil
}

// panel is one small plot of the training curves.
type panel struct {
	title, key string
	runs       []string // run names to draw; nil: the preference runs
	refKey     string   // eval key holding the reference level, if any
	refFirst   bool     // use each run's first value as the reference level
}

var panels = []panel{
	{title: "SFT loss (reference model)", key: "loss", runs: []string{"sft"}},
	{title: "Preference loss", key: "loss"},
	{title: "Reward margin (chosen - rejected)", key: "rewards/margins"},
	{title: "Reward accuracy", key: "rewards/accuracies"},
	{title: "Log-prob of chosen (batch mean of sums)", key: "logps/chosen", refFirst: true},
	{title: "Log-prob of rejected (batch mean of sums)", key: "logps/rejected", refFirst: true},
	{title: "Eval: log-prob after the edit (Figure 4)", key: "eval/post_edit_logp", refKey: "eval/ref_post_edit_logp"},
	{title: "DPOP penalty max(0, ref - policy)", key: "dpop/penalty"},
	{title: "Eval accuracy", key: "eval/accuracy"},
}

// series extracts (step, value) points of key from a run's rows.
func series(rows []MetricRow, key string) plotter.XYs {
	var xy plotter.XYs
	for i, r := range rows {
		v, ok := r[key]
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		x, ok := r["step"]
		if !ok {
			x = float64(i)
		}
		xy = append(xy, plotter.XY{X: x, Y: v})
	}
	return xy
}

// keyEntry is one item of the shared legend above the training curves; a
// legend per panel would cover the curves.
type keyEntry struct {
	name string
	line draw.LineStyle
}

var refLine = draw.LineStyle{Color: colRef, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}

func trainingCurves(d Data) (*canvasPlot, error) {
	var plots []*plot.Plot
	var key []keyEntry
	inKey := map[string]bool{}
	addKey := func(name string, l draw.LineStyle) {
		if !inKey[name] {
			inKey[name] = true
			key = append(key, keyEntry{name, l})
		}
	}
	for _, pn := range panels {
		p := newPlot(pn.title, "step", pn.key)
		p.Title.TextStyle.Font.Size = 11
		drawn := false
		var refLevel []float64
		for _, r := range d.Runs {
			if pn.runs == nil && strings.EqualFold(r.Name, "sft") {
				continue
			}
			if pn.runs != nil && !containsFold(pn.runs, r.Name) {
				continue
			}
			rows := trainRows(r.Metrics)
			if strings.HasPrefix(pn.key, "eval/") {
				rows = evalRows(r.Metrics)
			}
			xy := series(rows, pn.key)
			if len(xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, fmt.Errorf("panel %s run %s: %w", pn.key, r.Name, err)
			}
			l.LineStyle = draw.LineStyle{Color: methodColor(r.Name), Width: vg.Points(1.4)}
			p.Add(l)
			addKey(strings.ToUpper(r.Name), l.LineStyle)
			drawn = true
			if pn.refFirst {
				refLevel = append(refLevel, xy[0].Y)
			}
			if pn.refKey != "" {
				if ref := series(rows, pn.refKey); len(ref) > 0 {
					refLevel = append(refLevel, ref[len(ref)-1].Y)
				}
			}
		}
		if !drawn {
			continue
		}
		if pn.refKey != "" && len(refLevel) == 0 {
			if v, ok := d.Figure4.get(Reference); ok {
				refLevel = append(refLevel, v)
			}
		}
		if len(refLevel) > 0 {
			level := mean(refLevel)
			// p.Add has widened the x axis to the curves' steps.
			l, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: level}, {X: p.X.Max, Y: level}})
			if err != nil {
				return nil, err
			}
			l.LineStyle = refLine
			p.Add(l)
			addKey("reference model", refLine)
		}
		if strings.Contains(pn.key, "accurac") {
			p.Y.Min, p.Y.Max = 0, 1
		}
		plots = append(plots, p)
	}
	if len(plots) == 0 {
		return nil, nil
	}
	const cols = 3
	nrows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, nrows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	keyH := vg.Points(28)
	w, h := 14*vg.Inch, vg.Length(3.6*float64(nrows))*vg.Inch+keyH
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	drawKey(draw.Crop(dc, 0, 0, h-keyH, 0), key)
	dc = draw.Crop(dc, 0, 0, 0, -keyH)
	tiles := draw.Tiles{Rows: nrows, Cols: cols, PadX: vg.Points(18), PadY: vg.Points(18),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	return &canvasPlot{c}, nil
}

// drawKey draws the legend entries in one centred row.
func drawKey(c draw.Canvas, key []keyEntry) {
	sty := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 11),
		XAlign: draw.XLeft, YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
	seg, gap := vg.Points(28), vg.Points(22)
	total := vg.Length(0)
	for _, k := range key {
		total += seg + vg.Points(5) + sty.Width(k.name) + gap
	}
	x := c.Center().X - (total-gap)/2
	y := c.Center().Y
	for _, k := range key {
		c.StrokeLine2(k.line, x, y, x+seg, y)
		x += seg + vg.Points(5)
		c.FillText(sty, vg.Point{X: x, Y: y}, k.name)
		x += sty.Width(k.name) + gap
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
