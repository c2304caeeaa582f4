// Command train is dpopflow's terminal stage: it trains a GPT-2-shaped model on
// a preprocessed output directory, with supervised fine-tuning (to make the
// reference model) or a preference loss (DPO, DPO-Positive, IPO) starting from
// that reference.
//
//	go run ./pipelines/train --data=DIR --loss=sft --output=OUT/sft
//	go run ./pipelines/train --data=DIR --loss=dpop --ref=OUT/sft/final --output=OUT/dpop [--compute_ref]
//
// Metrics go to OUTPUT/metrics.jsonl (TRL's names), checkpoints to
// OUTPUT/checkpoint-N, the final model to OUTPUT/final (Hugging Face GPT-2
// directories). Rerunning a killed or interrupted command resumes it exactly
// from its last checkpoint.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/dpopflow/dpopflow/train"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stderr)) }

// run is the whole command, returning its exit status, so tests can call it.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := train.DefaultConfig()
	var cfg train.Config
	fs.StringVar(&cfg.Data, "data", "", "preprocessed output directory: local path, gs://… or memfs://… (required)")
	fs.StringVar(&cfg.Ref, "ref", "", "reference checkpoint directory (the SFT model); required for dpo/dpop/ipo, optional start for sft")
	fs.StringVar(&cfg.Output, "output", "", "local directory for metrics.jsonl, checkpoint-N/ and final/ (default dpopflow-out/train-LOSS)")
	fs.StringVar(&cfg.Loss, "loss", def.Loss, "loss: sft, dpo, dpop or ipo")
	fs.Float64Var(&cfg.Beta, "beta", def.Beta, "β of dpo/dpop/ipo (paper: 0.3)")
	fs.Float64Var(&cfg.Lambda, "lambda", def.Lambda, "λ of DPOP's penalty on chosen log-probs falling below the reference (paper: 50)")
	fs.IntVar(&cfg.MaxSteps, "max_steps", 0, "optimizer steps (default 1000 for sft, 100 otherwise)")
	fs.IntVar(&cfg.BatchSize, "batch_size", def.BatchSize, "pairs (sequences for sft) per micro-batch")
	fs.IntVar(&cfg.GradientAccumulationSteps, "gradient_accumulation_steps", def.GradientAccumulationSteps, "micro-batches per optimizer step")
	fs.Float64Var(&cfg.LearningRate, "learning_rate", 0, "peak learning rate (default 3e-3 for sft, 3e-4 otherwise)")
	fs.Float64Var(&cfg.MinLRRatio, "min_lr_ratio", def.MinLRRatio, "cosine decay ends at this fraction of the peak learning rate")
	fs.Float64Var(&cfg.WeightDecay, "weight_decay", def.WeightDecay, "decoupled weight decay (AdamW) on matrices and embeddings")
	fs.Float64Var(&cfg.WarmupRatio, "warmup_ratio", def.WarmupRatio, "linear warmup over this fraction of max_steps")
	fs.IntVar(&cfg.WarmupSteps, "warmup_steps", 0, "linear warmup steps (overrides --warmup_ratio when > 0)")
	fs.Float64Var(&cfg.MaxGradNorm, "max_grad_norm", def.MaxGradNorm, "clip the global gradient norm to this (0: no clipping)")
	fs.IntVar(&cfg.LoggingSteps, "logging_steps", def.LoggingSteps, "write train metrics every N steps")
	fs.IntVar(&cfg.EvalSteps, "eval_steps", def.EvalSteps, "evaluate every N steps (0: only at the end)")
	fs.IntVar(&cfg.SaveSteps, "save_steps", def.SaveSteps, "checkpoint every N steps (0: only final/)")
	fs.IntVar(&cfg.EvalPairs, "eval_pairs", 0, "eval pairs for eval/loss and the log-prob measures (0: all)")
	fs.IntVar(&cfg.EvalGenerations, "eval_generations", def.EvalGenerations, "eval prompts decoded greedily for eval/accuracy (0: none)")
	var seed int64
	fs.Int64Var(&seed, "seed", int64(def.Seed), "seed for initialisation and data order")
	fs.BoolVar(&cfg.ComputeRef, "compute_ref", false, "compute reference log-probs here with a frozen copy of --ref instead of reading them from scored shards")
	fs.BoolVar(&cfg.Resume, "resume", false, "require resuming from the latest checkpoint in --output (runs resume automatically when one exists)")
	fs.IntVar(&cfg.Model.NEmbd, "n_embd", 0, "model width, for sft from scratch (default 32)")
	fs.IntVar(&cfg.Model.NLayer, "n_layer", 0, "transformer blocks, for sft from scratch (default 2)")
	fs.IntVar(&cfg.Model.NHead, "n_head", 0, "attention heads, for sft from scratch (default 4)")
	fs.IntVar(&cfg.Model.NPositions, "n_positions", 0, "context length, for sft from scratch (default 128)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: train --data=DIR [--loss=sft|dpo|dpop|ipo] [--ref=CKPT] [--output=DIR] [flags]\n\n"+
			"Trains on a dpopflow output directory: sft makes the reference model; dpo, dpop and ipo\n"+
			"start from it (--ref) and need its log-probs, from scored shards (go run ./pipelines/score)\n"+
			"or computed here (--compute_ref). Rerun the same command to resume a stopped run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if cfg.Data == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "train: want --data=DIR and no positional arguments (got data %q, arguments %q)\n", cfg.Data, fs.Args())
		fs.Usage()
		return 2
	}
	cfg.Seed = uint64(seed)
	// SFT from scratch wants a larger rate and more steps than preference
	// tuning from an SFT model (DESIGN.md's measured settings).
	if cfg.LearningRate == 0 {
		cfg.LearningRate = 3e-4
		if cfg.Loss == train.LossSFT {
			cfg.LearningRate = 3e-3
		}
	}
	if cfg.MaxSteps == 0 {
		cfg.MaxSteps = 100
		if cfg.Loss == train.LossSFT {
			cfg.MaxSteps = 1000
		}
	}
	if cfg.Output == "" {
		cfg.Output = filepath.Join("dpopflow-out", "train-"+cfg.Loss)
	}

	// Ctrl-C stops between steps, like a kill: rerunning resumes.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Log = stderr
	res, err := train.Train(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "train: %d steps, final model in %s, metrics in %s\n", res.Steps, res.FinalDir, res.MetricsPath)
	printMetrics(stderr, "final eval", res.Eval)
	return 0
}

// printMetrics writes the last evaluation as an aligned table.
func printMetrics(w io.Writer, title string, m map[string]float64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	width := 0
	for k := range m {
		keys = append(keys, k)
		width = max(width, len(k))
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%s:\n", title)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s%s  %.4f\n", k, strings.Repeat(" ", width-len(k)), m[k])
	}
}
