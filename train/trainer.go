// Package train is dpopflow's terminal stage: it reads a preprocessed output
// directory (Arrow shards + manifest) and trains a GPT-2-shaped model on it with
// supervised fine-tuning (the reference model) or a preference loss: DPO,
// DPO-Positive (Pal et al., "Smaug", arXiv 2402.13228, v2 Eq. 3) or IPO.
//
// Train is one straight loop in the manner of nanoGPT's train.py: learning-rate
// schedule, forward/backward, gradient clipping, the optimizer step, logging,
// evaluation and checkpointing, in that order, each visible in the loop.
// Metrics go to OUTPUT/metrics.jsonl with TRL's names; checkpoints are Hugging
// Face GPT-2 directories with the optimizer and trainer state beside the
// weights, so a killed run resumes exactly.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
	"github.com/dpopflow/dpopflow/transforms/tokenize"
)

// Config is a training run. Field names follow TRL's (DPOConfig/SFTConfig).
type Config struct {
	Loss   string  `json:"loss"`   // "sft", "dpo", "dpop" or "ipo"
	Beta   float64 `json:"beta"`   // β of DPO/DPOP/IPO
	Lambda float64 `json:"lambda"` // λ of DPOP's penalty

	LearningRate float64 `json:"learning_rate"`
	// MinLRRatio is where the cosine decay ends, as a fraction of LearningRate.
	MinLRRatio  float64 `json:"min_lr_ratio"`
	WeightDecay float64 `json:"weight_decay"`
	MaxSteps    int     `json:"max_steps"`
	// BatchSize is pairs (sequences for SFT) per micro-batch; an optimizer step
	// sees BatchSize × GradientAccumulationSteps of them, as in TRL.
	BatchSize                 int `json:"per_device_train_batch_size"`
	GradientAccumulationSteps int `json:"gradient_accumulation_steps"`
	// WarmupSteps, if > 0, wins over WarmupRatio (a fraction of MaxSteps).
	WarmupSteps int     `json:"warmup_steps"`
	WarmupRatio float64 `json:"warmup_ratio"`
	// MaxGradNorm clips the global gradient norm; ≤ 0 disables clipping.
	MaxGradNorm float64 `json:"max_grad_norm"`

	LoggingSteps int `json:"logging_steps"` // train metrics every N steps (and the last)
	EvalSteps    int `json:"eval_steps"`    // eval every N steps (0: only at the end)
	SaveSteps    int `json:"save_steps"`    // checkpoint every N steps (0: only final/)
	// EvalPairs caps the eval pairs used for eval/loss and the log-prob
	// measures (0: all); EvalGenerations caps the prompts decoded for
	// eval/accuracy (0: none).
	EvalPairs       int `json:"eval_pairs"`
	EvalGenerations int `json:"eval_generations"`

	Seed uint64 `json:"seed"`

	Data   string `json:"data"`   // preprocessed output dir (local, gs://, memfs://)
	Ref    string `json:"ref"`    // reference checkpoint dir (the SFT model)
	Output string `json:"output"` // local dir for metrics, checkpoints and final/
	// ComputeRef computes reference log-probs here with a frozen copy of Ref
	// instead of reading them from scored shards.
	ComputeRef bool `json:"compute_ref"`
	// Resume insists on resuming (an error if Output has no checkpoint).
	// Without it a run still resumes when Output has checkpoints.
	Resume bool `json:"-"`

	// Model shapes a model trained from scratch (SFT without Ref); zero
	// fields take gpt.DefaultConfig's values, VocabSize the data's.
	Model gpt.Config `json:"model"`

	Quiet bool      `json:"-"` // no progress bar
	Log   io.Writer `json:"-"` // notes such as "resuming from …" (default os.Stderr)
	// OnStep, if set, is called after each optimizer step with its metrics.
	OnStep func(step int, metrics map[string]float64) `json:"-"`
	// Decode turns generated ids into text for eval/accuracy; by default the
	// tokenizer named in the data's manifest.
	Decode func([]int32) string `json:"-"`
}

// DefaultConfig is the paper's DPOP setting (β 0.3, λ 50) at the scale the
// embedded data needs (DESIGN.md: lr 3e-4, batch 32 pairs, 100 steps).
func DefaultConfig() Config {
	return Config{
		Loss: LossDPOP, Beta: 0.3, Lambda: 50,
		LearningRate: 3e-4, MinLRRatio: 0.1, MaxSteps: 100,
		BatchSize: 32, GradientAccumulationSteps: 1, WarmupRatio: 0.1, MaxGradNorm: 1.0,
		LoggingSteps: 1, EvalSteps: 25, SaveSteps: 50, EvalGenerations: 128,
		Seed: 42, Output: "dpopflow-train",
	}
}

func (c *Config) check() error {
	if _, err := NewObjective(c.Loss, c.Beta, c.Lambda); err != nil {
		return err
	}
	switch {
	case c.Data == "":
		return errors.New("no data dir (--data)")
	case c.Output == "":
		return errors.New("no output dir (--output)")
	case !(c.LearningRate > 0):
		return fmt.Errorf("learning rate must be > 0, got %v", c.LearningRate)
	case c.MaxSteps <= 0:
		return fmt.Errorf("max_steps must be > 0, got %d", c.MaxSteps)
	case c.BatchSize <= 0:
		return fmt.Errorf("batch size must be > 0, got %d", c.BatchSize)
	case c.MinLRRatio < 0 || c.MinLRRatio > 1:
		return fmt.Errorf("min_lr_ratio must be in [0, 1], got %v", c.MinLRRatio)
	case c.Loss != LossSFT && c.Ref == "":
		return fmt.Errorf("loss %s starts from the reference model: pass --ref=DIR (an SFT checkpoint)", c.Loss)
	}
	if c.GradientAccumulationSteps <= 0 {
		c.GradientAccumulationSteps = 1
	}
	if c.LoggingSteps <= 0 {
		c.LoggingSteps = 1
	}
	return nil
}

func (c *Config) warmup() int {
	if c.WarmupSteps > 0 {
		return c.WarmupSteps
	}
	return int(math.Ceil(c.WarmupRatio * float64(c.MaxSteps)))
}

// Result summarises a finished run.
type Result struct {
	Steps       int
	ResumedFrom int    // checkpoint step the run continued from (0: fresh)
	FinalDir    string // Output/final
	MetricsPath string
	Train       map[string]float64 // the last step's metrics
	Eval        map[string]float64 // the last evaluation
}

// Train runs cfg to MaxSteps, resuming from the latest checkpoint in
// cfg.Output if there is one. Cancelling ctx stops it between steps as a kill
// would (no save): rerunning the same command resumes from the last checkpoint.
func Train(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	logw := cfg.Log
	if logw == nil {
		logw = os.Stderr
	}
	pref := cfg.Loss != LossSFT

	// ---- data ----
	data, err := LoadData(ctx, cfg.Data)
	if err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	if pref && !data.Scored() && !cfg.ComputeRef {
		return Result{}, fmt.Errorf("train: loss %s needs reference log-probs, and %s has none (its manifest has no ref_model): "+
			"score it first with `go run ./pipelines/score --data=%s --ref=%s`, or pass --compute_ref to compute them here "+
			"with a frozen copy of the reference", cfg.Loss, cfg.Data, cfg.Data, cfg.Ref)
	}
	decode := cfg.Decode
	if decode == nil && cfg.EvalGenerations > 0 {
		tok, err := tokenize.New(data.Manifest.Tokenizer)
		if err != nil {
			return Result{}, fmt.Errorf("train: tokenizer %q for eval decoding: %w", data.Manifest.Tokenizer, err)
		}
		decode = tok.Decode
	}

	// ---- models: the reference (frozen) and the policy ----
	var ref *gpt.Model
	if cfg.Ref != "" {
		if ref, err = gpt.Load(cfg.Ref); err != nil {
			return Result{}, fmt.Errorf("train: load reference: %w", err)
		}
		if v := ref.Config().VocabSize; v != data.Meta.VocabSize {
			return Result{}, fmt.Errorf("train: reference %s has vocab %d but the data's tokenizer %q has %d",
				cfg.Ref, v, data.Meta.Tokenizer, data.Meta.VocabSize)
		}
	}
	refSHA := ""
	if ref != nil {
		refSHA = ref.WeightsSHA256()
	}
	if pref && !cfg.ComputeRef && data.Meta.RefModel != refSHA {
		return Result{}, fmt.Errorf("train: %s was scored with model %.12s… but --ref %s has weights %.12s…: "+
			"rescore with `go run ./pipelines/score`, or pass --compute_ref", cfg.Data, data.Meta.RefModel, cfg.Ref, refSHA)
	}
	if err := os.MkdirAll(cfg.Output, 0o755); err != nil {
		return Result{}, fmt.Errorf("train: create output dir: %w", err)
	}
	startStep, ckpt, err := latestCheckpoint(cfg.Output)
	if err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	if cfg.Resume && ckpt == "" {
		return Result{}, fmt.Errorf("train: --resume, but %s has no checkpoint-N directory", cfg.Output)
	}
	sampler := NewSampler(len(data.Train), cfg.Seed)
	var policy *gpt.Model
	var opt *Adam
	if ckpt != "" {
		var st TrainerState
		if policy, opt, st, err = resumeFrom(ckpt, cfg, data, refSHA); err != nil {
			return Result{}, fmt.Errorf("train: %w", err)
		}
		sampler.Epoch, sampler.Pos = st.SamplerEpoch, st.SamplerPos
		fmt.Fprintf(logw, "train: resuming from %s (step %d of %d)\n", ckpt, startStep, cfg.MaxSteps)
	} else {
		if policy, err = newPolicy(cfg, data.Meta.VocabSize, ref); err != nil {
			return Result{}, fmt.Errorf("train: %w", err)
		}
		opt = NewAdam(policy.Params(), cfg.WeightDecay)
	}
	nPos := policy.Config().NPositions

	// Reference log-prob sums for each pair: from the shards, or computed once
	// per pair (lazily, then cached) with the frozen reference.
	refs := &refSums{model: ref, compute: cfg.ComputeRef || !data.Scored(), cache: map[*schemas.Row][2]float64{}}
	if pref && ckpt == "" && !cfg.ComputeRef {
		if err := checkStoredRefs(policy, data.Train, nPos); err != nil {
			return Result{}, fmt.Errorf("train: %w", err)
		}
	}

	evalRows := make([]*schemas.Row, 0, len(data.Eval))
	for i := range data.Eval {
		if cfg.EvalPairs > 0 && len(evalRows) >= cfg.EvalPairs {
			break
		}
		evalRows = append(evalRows, &data.Eval[i])
	}
	ev := &evaluator{rows: evalRows, genRows: accuracyRows(evalRows, cfg.EvalGenerations),
		refs: refs, ref: ref, eos: data.Meta.EOSID, decode: decode}
	obj, _ := NewObjective(cfg.Loss, cfg.Beta, cfg.Lambda) // checked in cfg.check

	metrics, err := openMetrics(cfg.Output, startStep, ckpt != "")
	if err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	defer metrics.Close()

	var bar *progressbar.ProgressBar
	if !cfg.Quiet {
		bar = progressbar.NewOptions(cfg.MaxSteps, progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(cfg.Loss), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetItsString("steps"),
			progressbar.OptionShowIts(), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }))
		bar.Set(startStep)
	}

	res := Result{ResumedFrom: startStep, MetricsPath: filepath.Join(cfg.Output, metricsFile)}
	lastCkpt := ckpt
	params := policy.Params()
	warmup := cfg.warmup()
	lastEval := -1

	// ---- the loop ----
	for step := startStep + 1; step <= cfg.MaxSteps; step++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("train: stopped before step %d (%w); rerun the same command to resume from %s",
				step, err, orNone(lastCkpt))
		}
		t0 := time.Now()

		// Learning rate for this update (schedule counts updates from 0).
		lr := LearningRate(step-1, warmup, cfg.MaxSteps, cfg.LearningRate, cfg.MinLRRatio)

		// Forward and backward over the micro-batches; gradients accumulate.
		policy.ZeroGrad()
		var st batchStats
		tokens := 0
		for micro := 0; micro < cfg.GradientAccumulationSteps; micro++ {
			examples := make([]Example, 0, cfg.BatchSize)
			for _, i := range sampler.Next(cfg.BatchSize) {
				examples = append(examples, MakeExample(&data.Train[i], nPos))
			}
			ms, n, err := forwardBackward(policy, obj, refs, examples, 1/float64(cfg.GradientAccumulationSteps))
			if err != nil {
				return res, fmt.Errorf("train: step %d: %w", step, err)
			}
			st.add(ms)
			tokens += n
		}

		// Clip, then stop on divergence before the update can spread it.
		gradNorm := ClipGradNorm(params, cfg.MaxGradNorm)
		loss := st.mean("loss")
		if bad(loss) || bad(gradNorm) {
			what, v := "loss", loss
			if !bad(loss) {
				what, v = "grad_norm", gradNorm
			}
			return res, fmt.Errorf("train: step %d: %s is %v (loss %v, grad_norm %v): training diverged, stopping "+
				"(try a lower --learning_rate); nothing was saved for this step; the last checkpoint, from before it, is %s",
				step, what, v, loss, gradNorm, orNone(lastCkpt))
		}

		// The update.
		if err := opt.Update(params, lr); err != nil {
			return res, fmt.Errorf("train: step %d: %w", step, err)
		}
		res.Steps = step

		// Logging.
		row := st.metrics(cfg.Beta, pref)
		row["grad_norm"] = gradNorm
		row["learning_rate"] = lr
		row["step"] = float64(step)
		row["epoch"] = sampler.EpochFloat()
		row["tokens/s"] = float64(tokens) / time.Since(t0).Seconds()
		res.Train = row
		if step%cfg.LoggingSteps == 0 || step == cfg.MaxSteps {
			if err := metrics.write(row); err != nil {
				return res, fmt.Errorf("train: step %d: %w", step, err)
			}
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("%s loss %.4f %5.0f tok/s", cfg.Loss, loss, row["tokens/s"]))
			bar.Set(step)
		}

		// Evaluation.
		if (cfg.EvalSteps > 0 && step%cfg.EvalSteps == 0) || step == cfg.MaxSteps {
			er, err := ev.run(policy, obj)
			if err != nil {
				return res, fmt.Errorf("train: eval at step %d: %w", step, err)
			}
			er["step"], er["epoch"] = float64(step), sampler.EpochFloat()
			if err := metrics.write(er); err != nil {
				return res, fmt.Errorf("train: step %d: %w", step, err)
			}
			res.Eval, lastEval = er, step
		}

		// Checkpointing.
		if cfg.SaveSteps > 0 && step%cfg.SaveSteps == 0 {
			st := TrainerState{GlobalStep: step, MaxSteps: cfg.MaxSteps, Epoch: sampler.EpochFloat(),
				SamplerSeed: cfg.Seed, SamplerEpoch: sampler.Epoch, SamplerPos: sampler.Pos,
				WeightsSHA256: policy.WeightsSHA256(), RefModelSHA256: refSHA, DataSHA256: data.Fingerprint(), Config: cfg}
			if lastCkpt, err = saveCheckpoint(cfg.Output, policy, opt, st); err != nil {
				return res, fmt.Errorf("train: %w", err)
			}
		}
		if cfg.OnStep != nil {
			cfg.OnStep(step, row)
		}
	}

	// A run resumed at (or past) MaxSteps still reports a final evaluation.
	if lastEval < 0 {
		er, err := ev.run(policy, obj)
		if err != nil {
			return res, fmt.Errorf("train: final eval: %w", err)
		}
		res.Eval = er
	}
	res.FinalDir = filepath.Join(cfg.Output, "final")
	if err := policy.Save(res.FinalDir); err != nil {
		return res, fmt.Errorf("train: save final model: %w", err)
	}
	if bar != nil {
		bar.Finish()
	}
	return res, nil
}

// newPolicy is the model a fresh run starts from: a copy of the reference,
// or for SFT without one a new model (cfg.Model over gpt.DefaultConfig).
func newPolicy(cfg Config, vocab int, ref *gpt.Model) (*gpt.Model, error) {
	if ref != nil {
		return ref.Clone(), nil
	}
	mc := gpt.DefaultConfig(vocab)
	if cfg.Model.NPositions > 0 {
		mc.NPositions = cfg.Model.NPositions
	}
	if cfg.Model.NEmbd > 0 {
		mc.NEmbd = cfg.Model.NEmbd
	}
	if cfg.Model.NLayer > 0 {
		mc.NLayer = cfg.Model.NLayer
	}
	if cfg.Model.NHead > 0 {
		mc.NHead = cfg.Model.NHead
	}
	m, err := gpt.New(mc, int64(cfg.Seed))
	if err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	return m, nil
}

// resumeFrom loads a checkpoint's weights, optimizer moments and trainer
// state, refusing one made with other settings, data or reference.
func resumeFrom(ckpt string, cfg Config, data *Dataset, refSHA string) (*gpt.Model, *Adam, TrainerState, error) {
	st, err := loadTrainerState(ckpt)
	if err != nil {
		return nil, nil, st, err
	}
	if err := sameTrajectory(st.Config, cfg); err != nil {
		return nil, nil, st, fmt.Errorf("cannot resume from %s: %w", ckpt, err)
	}
	if st.DataSHA256 != data.Fingerprint() {
		return nil, nil, st, fmt.Errorf("cannot resume from %s: it was trained on other data than %s "+
			"(shard checksums differ); use a new --output", ckpt, cfg.Data)
	}
	if st.RefModelSHA256 != refSHA {
		return nil, nil, st, fmt.Errorf("cannot resume from %s: it was trained against reference %.12s…, --ref has weights %.12s…",
			ckpt, st.RefModelSHA256, refSHA)
	}
	policy, err := gpt.Load(ckpt)
	if err != nil {
		return nil, nil, st, fmt.Errorf("resume: %w", err)
	}
	opt, err := LoadAdam(filepath.Join(ckpt, optimizerFile), policy.Params())
	if err != nil {
		return nil, nil, st, fmt.Errorf("resume: %w", err)
	}
	return policy, opt, st, nil
}

func bad(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }

func orNone(ckpt string) string {
	if ckpt == "" {
		return "none (no checkpoint was saved yet)"
	}
	return ckpt
}

// forwardBackward runs one micro-batch: chosen sequences (then, for the
// preference losses, rejected ones) through the policy, the batch loss on the
// summed log-probs, and the backward pass with dL/dlc broadcast to each chosen
// token (every token's log-prob enters lc with weight 1), scaled by scale for
// gradient accumulation. It returns the batch statistics and tokens processed.
func forwardBackward(policy *gpt.Model, obj *Objective, refs *refSums, ex []Example, scale float64) (batchStats, int, error) {
	n := len(ex)
	pref := obj.Kind != LossSFT
	seqs := make([]gpt.Sequence, 0, 2*n)
	b := Logps{Chosen: make([]float64, n), ChosenLen: make([]int, n)}
	for i := range ex {
		seqs = append(seqs, ex[i].Chosen)
		b.ChosenLen[i] = len(ex[i].Chosen.Completion)
	}
	if pref {
		b.Rejected, b.RejectedLen = make([]float64, n), make([]int, n)
		for i := range ex {
			seqs = append(seqs, ex[i].Rejected)
			b.RejectedLen[i] = len(ex[i].Rejected.Completion)
		}
		var err error
		if b.RefChosen, b.RefRejected, err = refs.get(ex); err != nil {
			return batchStats{}, 0, err
		}
	}
	tokens := 0
	for _, s := range seqs {
		tokens += len(s.Prompt) + len(s.Completion)
	}
	var st batchStats
	_, _, err := policy.ForwardBackward(seqs, func(logps [][]float32) (float64, [][]float32, error) {
		for i := range ex {
			b.Chosen[i] = sum32(logps[i])
			if pref {
				b.Rejected[i] = sum32(logps[n+i])
			}
		}
		loss, dlc, dlr, err := obj.Compute(b)
		if err != nil {
			return 0, nil, err
		}
		d := make([][]float32, len(logps))
		for i := range ex {
			d[i] = fill32(len(logps[i]), dlc[i]*scale)
			if pref {
				d[n+i] = fill32(len(logps[n+i]), dlr[i]*scale)
			}
		}
		st = newBatchStats(loss, b)
		return loss * scale, d, nil
	})
	if err != nil {
		return batchStats{}, 0, err
	}
	return st, tokens, nil
}

func sum32(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s
}

func fill32(n int, v float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(v)
	}
	return out
}

// batchStats accumulates TRL's per-batch metrics over micro-batches.
type batchStats struct {
	n    int
	sums map[string]float64
}

func newBatchStats(loss float64, b Logps) batchStats {
	s := batchStats{n: 1, sums: map[string]float64{"loss": loss}}
	n := float64(len(b.Chosen))
	for i := range b.Chosen {
		s.sums["logps/chosen"] += b.Chosen[i] / n
		if b.Rejected == nil {
			continue
		}
		dc, dr := b.Chosen[i]-b.RefChosen[i], b.Rejected[i]-b.RefRejected[i]
		s.sums["margin"] += (dc - dr) / n
		s.sums["dc"] += dc / n
		s.sums["dr"] += dr / n
		if dc > dr {
			s.sums["rewards/accuracies"] += 1 / n
		}
		s.sums["logps/rejected"] += b.Rejected[i] / n
		s.sums["dpop/penalty"] += math.Max(0, b.RefChosen[i]-b.Chosen[i]) / n
	}
	return s
}

func (s *batchStats) add(o batchStats) {
	if s.sums == nil {
		s.sums = map[string]float64{}
	}
	s.n += o.n
	for k, v := range o.sums {
		s.sums[k] += v
	}
}

func (s *batchStats) mean(k string) float64 { return s.sums[k] / float64(s.n) }

// metrics names the means as TRL does; rewards are β-scaled log-ratios.
func (s *batchStats) metrics(beta float64, pref bool) map[string]float64 {
	m := map[string]float64{"loss": s.mean("loss"), "logps/chosen": s.mean("logps/chosen")}
	if pref {
		m["rewards/chosen"] = beta * s.mean("dc")
		m["rewards/rejected"] = beta * s.mean("dr")
		m["rewards/margins"] = beta * s.mean("margin")
		m["rewards/accuracies"] = s.mean("rewards/accuracies")
		m["logps/rejected"] = s.mean("logps/rejected")
		m["dpop/penalty"] = s.mean("dpop/penalty")
	}
	return m
}
