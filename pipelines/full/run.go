package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/dpopflow/dpopflow/runners"
	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train"
	"github.com/dpopflow/dpopflow/train/gpt"
	"github.com/dpopflow/dpopflow/train/report"
	"github.com/dpopflow/dpopflow/transforms"
	"github.com/dpopflow/dpopflow/transforms/synth"
)

// options are the flags of full. The defaults are the settings the report
// was tuned with (see README "What the default run shows").
type options struct {
	Input  string // comma-separated globs; "" generates the default data
	Output string
	Ref    string // an existing reference checkpoint; "" trains one (SFT)

	Seed     int64
	Math     int // generated math pairs
	ARC      int // generated multiple-choice questions (3 pairs each)
	Shards   int
	EvalFrac float64

	Model gpt.Config

	SFTSteps int
	SFTLR    float64
	Steps    int // DPO and DPOP steps
	LR       float64
	Batch    int
	Beta     float64
	Lambda   float64

	EvalSteps       int
	EvalGenerations int
	Quiet           bool
}

func defaultOptions() options {
	return options{
		Output: "dpopflow-out", Seed: 1, Math: 1000, ARC: 300, Shards: 4, EvalFrac: 0.1,
		Model:    gpt.Config{NEmbd: 32, NLayer: 2, NHead: 4, NPositions: 128, LayerNormEpsilon: 1e-5},
		SFTSteps: 1000, SFTLR: 3e-3,
		Steps: 100, LR: 1e-3, Batch: 32, Beta: 0.3, Lambda: 50,
		EvalSteps: 25, EvalGenerations: 128,
	}
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Input, "input", o.Input, "input glob(s), comma-separated, in TRL's JSONL/Parquet formats (default: generate the embedded default data)")
	fs.StringVar(&o.Output, "output", o.Output, "output directory for every stage and the report")
	fs.StringVar(&o.Ref, "ref", o.Ref, "reference checkpoint directory (Hugging Face GPT-2); default: train one with SFT")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "seed for data generation and training")
	fs.IntVar(&o.Math, "math", o.Math, "generated math (MetaMath-style, low edit distance) pairs")
	fs.IntVar(&o.ARC, "arc", o.ARC, "generated multiple-choice (ARC-style) questions, 3 pairs each")
	fs.IntVar(&o.Shards, "shards", o.Shards, "Arrow shards to write")
	fs.Float64Var(&o.EvalFrac, "eval_fraction", o.EvalFrac, "fraction of pairs held out for eval (by id hash)")
	fs.IntVar(&o.Model.NEmbd, "n_embd", o.Model.NEmbd, "reference model width (SFT from scratch)")
	fs.IntVar(&o.Model.NLayer, "n_layer", o.Model.NLayer, "reference model layers")
	fs.IntVar(&o.Model.NHead, "n_head", o.Model.NHead, "reference model attention heads")
	fs.IntVar(&o.Model.NPositions, "n_positions", o.Model.NPositions, "reference model context length (also the preprocessing max_length)")
	fs.IntVar(&o.SFTSteps, "sft_steps", o.SFTSteps, "SFT steps for the reference model")
	fs.Float64Var(&o.SFTLR, "sft_learning_rate", o.SFTLR, "SFT peak learning rate")
	fs.IntVar(&o.Steps, "max_steps", o.Steps, "DPO and DPOP steps")
	fs.Float64Var(&o.LR, "learning_rate", o.LR, "DPO and DPOP peak learning rate")
	fs.IntVar(&o.Batch, "batch_size", o.Batch, "pairs per step (sequences per step for SFT)")
	fs.Float64Var(&o.Beta, "beta", o.Beta, "β of DPO and DPOP (paper: 0.3)")
	fs.Float64Var(&o.Lambda, "lambda", o.Lambda, "λ of DPOP's penalty (paper: 50)")
	fs.IntVar(&o.EvalSteps, "eval_steps", o.EvalSteps, "evaluate every N steps")
	fs.IntVar(&o.EvalGenerations, "eval_generations", o.EvalGenerations, "eval prompts decoded greedily for eval accuracy")
	fs.BoolVar(&o.Quiet, "quiet", o.Quiet, "no progress bars")
}

func (o *options) validate() error {
	switch {
	case o.Output == "":
		return errors.New("--output is empty")
	case o.SFTSteps <= 0 && o.Ref == "":
		return errors.New("--sft_steps must be > 0 when no --ref is given")
	case o.Steps <= 0:
		return errors.New("--max_steps must be > 0")
	case o.Model.NPositions < 16:
		return fmt.Errorf("--n_positions %d is too small", o.Model.NPositions)
	}
	return nil
}

// pipeline is one run of full: where things go and what each stage took.
type pipeline struct {
	o      options
	log    io.Writer
	stages []report.Stage
	start  time.Time
}

func (p *pipeline) dir(name string) string { return filepath.Join(p.o.Output, name) }

// stage runs fn as stage i of n, timing it and printing a line a person can
// follow; fn reports whether it found its output already complete.
func (p *pipeline) stage(i, n int, name string, fn func() (skipped bool, err error)) error {
	fmt.Fprintf(p.log, "[%d/%d] %s\n", i, n, name)
	t0 := time.Now()
	skipped, err := fn()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(t0).Seconds()
	p.stages = append(p.stages, report.Stage{Name: name, Seconds: secs, Skipped: skipped})
	if skipped {
		fmt.Fprintf(p.log, "      %s: already complete for these inputs and settings, reused\n", name)
	} else {
		fmt.Fprintf(p.log, "      %s: done in %.1fs\n", name, secs)
	}
	return nil
}

func run(ctx context.Context, o options, log io.Writer) (string, error) {
	p := &pipeline{o: o, log: log, start: time.Now()}
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return "", err
	}
	const n = 7
	inputs := o.Input
	if err := p.stage(1, n, "generate data", func() (bool, error) {
		if inputs != "" {
			return true, nil
		}
		inputs = p.dir("data/default.jsonl")
		return p.generate(inputs)
	}); err != nil {
		return "", err
	}
	prepared := p.dir("prepared")
	if err := p.stage(2, n, "preprocess (Beam, "+runners.Name()+")", func() (bool, error) {
		return p.preprocess(ctx, splitGlobs(inputs), prepared)
	}); err != nil {
		return "", err
	}
	ref := o.Ref
	if err := p.stage(3, n, "SFT reference model", func() (bool, error) {
		if ref != "" {
			return true, nil
		}
		ref = filepath.Join(p.dir("sft"), "final")
		return p.train(ctx, train.LossSFT, prepared, "", p.dir("sft"))
	}); err != nil {
		return "", err
	}
	scored := p.dir("scored")
	if err := p.stage(4, n, "score reference log-probs (Beam, "+runners.Name()+")", func() (bool, error) {
		return p.score(ctx, prepared, ref, scored)
	}); err != nil {
		return "", err
	}
	for i, loss := range []string{train.LossDPOP, train.LossDPO} {
		if err := p.stage(5+i, n, "train "+strings.ToUpper(loss), func() (bool, error) {
			return p.train(ctx, loss, scored, ref, p.dir(loss))
		}); err != nil {
			return "", err
		}
	}
	var sum report.Summary
	if err := p.stage(7, n, "report", func() (bool, error) {
		var err error
		sum, err = p.report(ctx, prepared)
		return false, err
	}); err != nil {
		return "", err
	}
	return p.finalWords(sum), nil
}

func splitGlobs(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// generate writes the embedded default data set, unless the file already
// holds exactly those bytes.
func (p *pipeline) generate(path string) (bool, error) {
	cfg := synth.Default()
	cfg.Seed, cfg.Math, cfg.ARC = p.o.Seed, p.o.Math, p.o.ARC
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	var buf bytes.Buffer
	st, err := synth.WriteJSONL(&buf, cfg)
	if err != nil {
		return false, err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, buf.Bytes()) {
		return true, nil
	}
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return false, err
	}
	fmt.Fprintf(p.log, "      %s: %s\n", path, st)
	return false, nil
}

// preprocess runs the Beam preprocessing pipeline into dir, unless dir already
// holds a complete output made from the same input bytes and options.
func (p *pipeline) preprocess(ctx context.Context, globs []string, dir string) (bool, error) {
	po := transforms.DefaultPreprocessOptions()
	po.Inputs, po.Output, po.Shards = globs, dir, p.o.Shards
	po.EvalFraction = p.o.EvalFrac
	po.MaxLength = p.o.Model.NPositions + 1 // the model sees all but the last token
	if po.MaxPromptLength >= po.MaxLength {
		po.MaxPromptLength = po.MaxLength / 2
	}
	inputs, err := hashInputs(ctx, globs)
	if err != nil {
		return false, err
	}
	stamp := stampOf("preprocess", po, inputs)
	if p.upToDate(dir, stamp) {
		return true, nil
	}
	if err := transforms.PrepareOutput(ctx, dir, true); err != nil {
		return false, err
	}
	m, err := runPipeline(ctx, dir, func(s beam.Scope) error { return transforms.Preprocess(s, po) })
	if err != nil {
		return false, err
	}
	c := m.Counts
	fmt.Fprintf(p.log, "      read %d → rejected %d, duplicates %d → written %d (train %d, eval %d; low-distance %d)\n",
		c.Read, c.Rejected, c.Duplicates, c.Written, c.Train, c.Eval, c.LowDistance)
	return false, p.markDone(dir, stamp)
}

// score adds reference log-probs with the Beam scoring pipeline.
func (p *pipeline) score(ctx context.Context, prepared, ref, dir string) (bool, error) {
	sha, err := transforms.RefModelSHA256(ctx, ref)
	if err != nil {
		return false, err
	}
	manifest, err := os.ReadFile(filepath.Join(prepared, transforms.ManifestFile))
	if err != nil {
		return false, err
	}
	so := transforms.ScoreOptions{Input: prepared, Output: dir, Ref: ref, BatchSize: 64, Overwrite: true}
	stamp := stampOf("score", so, string(manifest), sha)
	if p.upToDate(dir, stamp) {
		return true, nil
	}
	if _, err := runPipeline(ctx, dir, func(s beam.Scope) error { return transforms.Score(s, so) }); err != nil {
		return false, err
	}
	return false, p.markDone(dir, stamp)
}

// runPipeline builds a Beam pipeline writing into dir, runs it on the chosen
// runner and returns the manifest it wrote: a run without one is incomplete.
func runPipeline(ctx context.Context, dir string, build func(beam.Scope) error) (schemas.Manifest, error) {
	pl, s := beam.NewPipelineWithRoot()
	if err := build(s); err != nil {
		return schemas.Manifest{}, err
	}
	if _, err := runners.Run(ctx, pl); err != nil {
		return schemas.Manifest{}, err
	}
	m, err := transforms.ReadManifest(ctx, dir)
	if err != nil {
		return schemas.Manifest{}, fmt.Errorf("pipeline finished but its output is incomplete: %w", err)
	}
	return m, nil
}

// trainConfig is the training configuration of one method.
func (p *pipeline) trainConfig(loss, data, ref, out string) train.Config {
	cfg := train.DefaultConfig()
	cfg.Loss, cfg.Data, cfg.Ref, cfg.Output = loss, data, ref, out
	cfg.Seed = uint64(p.o.Seed)
	cfg.BatchSize = p.o.Batch
	cfg.EvalSteps = p.o.EvalSteps
	cfg.EvalGenerations = p.o.EvalGenerations
	cfg.Quiet = p.o.Quiet
	cfg.Log = p.log
	if loss == train.LossSFT {
		cfg.LearningRate, cfg.MaxSteps = p.o.SFTLR, p.o.SFTSteps
		cfg.SaveSteps = max(p.o.SFTSteps/4, 1)
		cfg.EvalSteps = max(p.o.SFTSteps/4, 1)
		cfg.Model = p.o.Model
	} else {
		cfg.LearningRate, cfg.MaxSteps = p.o.LR, p.o.Steps
		cfg.Beta, cfg.Lambda = p.o.Beta, p.o.Lambda
		cfg.SaveSteps = max(p.o.Steps/2, 1)
	}
	return cfg
}

// train runs one training stage; a finished run with the same configuration
// and data is reused, an interrupted one resumes from its last checkpoint.
func (p *pipeline) train(ctx context.Context, loss, data, ref, out string) (bool, error) {
	cfg := p.trainConfig(loss, data, ref, out)
	manifest, err := os.ReadFile(filepath.Join(data, transforms.ManifestFile))
	if err != nil {
		return false, err
	}
	refSHA := ""
	if ref != "" {
		m, err := gpt.Load(ref)
		if err != nil {
			return false, fmt.Errorf("load reference %s: %w", ref, err)
		}
		refSHA = m.WeightsSHA256()
	}
	stamp := stampOf("train", cfg, string(manifest), refSHA)
	if p.upToDate(out, stamp) {
		return true, nil
	}
	if prev, err := os.ReadFile(filepath.Join(out, stampFile)); err == nil && string(prev) != stamp {
		// A finished run with other settings: start afresh rather than resume it.
		if err := os.RemoveAll(out); err != nil {
			return false, err
		}
	}
	if _, err := train.Train(ctx, cfg); err != nil {
		return false, err
	}
	return false, p.markDone(out, stamp)
}

// report gathers every stage's results into the report.
func (p *pipeline) report(ctx context.Context, prepared string) (report.Summary, error) {
	m, err := transforms.ReadManifest(ctx, prepared)
	if err != nil {
		return report.Summary{}, err
	}
	d := report.Data{
		Manifest: m,
		Figure4:  report.Measure{}, PreEdit: report.Measure{}, HighDistance: report.Measure{}, Accuracy: report.Measure{},
		Settings: map[string]string{
			"model":                fmt.Sprintf("GPT-2 shape, n_embd %d, n_layer %d, n_head %d, n_positions %d", p.o.Model.NEmbd, p.o.Model.NLayer, p.o.Model.NHead, p.o.Model.NPositions),
			"tokenizer":            m.Tokenizer,
			"beta":                 strconv.FormatFloat(p.o.Beta, 'g', -1, 64),
			"lambda":               strconv.FormatFloat(p.o.Lambda, 'g', -1, 64),
			"learning_rate":        strconv.FormatFloat(p.o.LR, 'g', -1, 64),
			"max_steps":            strconv.Itoa(p.o.Steps),
			"batch_size (pairs)":   strconv.Itoa(p.o.Batch),
			"sft_steps":            strconv.Itoa(p.o.SFTSteps),
			"sft_learning_rate":    strconv.FormatFloat(p.o.SFTLR, 'g', -1, 64),
			"low_distance_ratio":   strconv.FormatFloat(m.Options.LowDistanceRatio, 'g', -1, 64),
			"runner":               runners.Name(),
			"reference checkpoint": p.o.Ref,
			"seed":                 strconv.FormatInt(p.o.Seed, 10),
		},
	}
	if p.o.Ref == "" {
		d.Settings["reference checkpoint"] = "trained here (SFT)"
	}
	runs := []struct{ name, dir string }{{"sft", p.dir("sft")}, {report.DPO, p.dir("dpo")}, {report.DPOP, p.dir("dpop")}}
	for _, r := range runs {
		rows, err := report.ReadMetrics(filepath.Join(r.dir, "metrics.jsonl"))
		if err != nil {
			if r.name == "sft" && p.o.Ref != "" {
				continue
			}
			return report.Summary{}, err
		}
		d.Runs = append(d.Runs, report.Run{Name: r.name, Metrics: rows})
		last := lastEval(rows)
		if last == nil {
			continue
		}
		if r.name == "sft" {
			setIf(d.Accuracy, report.Reference, last, "eval/accuracy")
			continue
		}
		setIf(d.Figure4, r.name, last, "eval/post_edit_logp")
		setIf(d.PreEdit, r.name, last, "eval/pre_edit_logp")
		setIf(d.HighDistance, r.name, last, "eval/high_distance_logp")
		setIf(d.Accuracy, r.name, last, "eval/accuracy")
		// The reference's measures, computed by the trainer on the same eval pairs.
		setIf(d.Figure4, report.Reference, last, "eval/ref_post_edit_logp")
		setIf(d.PreEdit, report.Reference, last, "eval/ref_pre_edit_logp")
		setIf(d.HighDistance, report.Reference, last, "eval/ref_high_distance_logp")
	}
	d.Stages = p.stages
	d.WallSeconds = time.Since(p.start).Seconds()
	return report.Write(p.o.Output, d)
}

func lastEval(rows []report.MetricRow) report.MetricRow {
	for i := len(rows) - 1; i >= 0; i-- {
		for k := range rows[i] {
			if strings.HasPrefix(k, "eval/") {
				return rows[i]
			}
		}
	}
	return nil
}

func setIf(m report.Measure, key string, row report.MetricRow, metric string) {
	if v, ok := row[metric]; ok {
		m[key] = v
	}
}

// finalWords is the terminal summary that points at the report.
func (p *pipeline) finalWords(s report.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", s.Headline)
	fmtWith := func(layout string) func(report.Measure, string) string {
		return func(m report.Measure, k string) string {
			if v, ok := m[k]; ok {
				return fmt.Sprintf(layout, v)
			}
			return "n/a"
		}
	}
	f, pct := fmtWith("%+.3f"), fmtWith("%.3f")
	fmt.Fprintf(&b, "  %-34s %10s %10s %10s\n", "", "reference", "DPO", "DPOP")
	fmt.Fprintf(&b, "  %-34s %10s %10s %10s\n", "log-prob of chosen after the edit", f(s.PostEditLogp, report.Reference), f(s.PostEditLogp, report.DPO), f(s.PostEditLogp, report.DPOP))
	fmt.Fprintf(&b, "  %-34s %10s %10s %10s\n", "  (paper, MetaMath)", f(s.PaperPostEditLogp, report.Reference), f(s.PaperPostEditLogp, report.DPO), f(s.PaperPostEditLogp, report.DPOP))
	fmt.Fprintf(&b, "  %-34s %10s %10s %10s\n", "eval accuracy (greedy)", pct(s.EvalAccuracy, report.Reference), pct(s.EvalAccuracy, report.DPO), pct(s.EvalAccuracy, report.DPOP))
	fmt.Fprintf(&b, "\nStages:\n")
	for _, st := range p.stages {
		note := ""
		if st.Skipped {
			note = " (reused)"
		}
		fmt.Fprintf(&b, "  %-44s %7.1fs%s\n", st.Name, st.Seconds, note)
	}
	fmt.Fprintf(&b, "  %-44s %7.1fs\n", "total", time.Since(p.start).Seconds())
	fmt.Fprintf(&b, "\nReport: %s\n", filepath.Join(p.o.Output, "report.html"))
	return b.String()
}

// A stage's stamp records what its output was made from; the output is reused
// only when the stamp matches and the output is still complete.
const stampFile = ".dpopflow-stamp"

func stampOf(kind string, parts ...any) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	fmt.Fprintln(h, kind)
	for _, x := range parts {
		_ = enc.Encode(x)
	}
	return kind + " " + hex.EncodeToString(h.Sum(nil))
}

func (p *pipeline) upToDate(dir, stamp string) bool {
	got, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil || string(got) != stamp {
		return false
	}
	// The output must still be complete: a manifest, or a final model.
	for _, marker := range []string{transforms.ManifestFile, "final/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return true
		}
	}
	return false
}

func (p *pipeline) markDone(dir, stamp string) error {
	return writeFileAtomic(filepath.Join(dir, stampFile), []byte(stamp))
}

// hashInputs fingerprints the input files by content (through Beam's
// filesystem, so gs:// works), so a changed input reruns preprocessing.
func hashInputs(ctx context.Context, globs []string) ([]schemas.InputFile, error) {
	files, err := transforms.ExpandInputs(ctx, globs)
	if err != nil {
		return nil, err
	}
	var out []schemas.InputFile
	for _, path := range files {
		in, err := transforms.HashInputFile(ctx, path)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
