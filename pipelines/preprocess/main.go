// Command preprocess turns preference files into dpopflow's training input:
// read and validate → dedupe → tokenize → token edit distance → (with --ref,
// reference log-probs) → sharded Arrow (or Parquet) files, a rejects file
// (every dropped record with its reason) and manifest.json, written last.
//
//	go run ./pipelines/preprocess --input=data/*.jsonl --output=out [--tokenizer=byte]
//	    [--max_length=1024] [--max_prompt_length=512] [--eval_fraction=0.05]
//	    [--low_distance_ratio=0.15] [--shards=4] [--format=arrow] [--chat_template=]
//	    [--ref=CKPT_DIR [--ref_batch_size=32]] [--overwrite]
//
// --ref scores the pairs with a reference checkpoint in the same run, giving
// the output pipelines/score would produce from an unscored one; --max_length
// must then be at most the model's n_positions + 1.
//
// It runs on Prism in-process by default; --runner and the other Beam flags
// select a job server or Dataflow (see package runners).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/dpopflow/dpopflow/runners"
	"github.com/dpopflow/dpopflow/transforms"
)

var (
	defaults = transforms.DefaultPreprocessOptions()

	input            = flag.String("input", "", "input files: comma-separated globs of JSONL or Parquet (local, gs://, memfs://)")
	output           = flag.String("output", "", "output directory")
	tokenizer        = flag.String("tokenizer", defaults.Tokenizer, "byte, gpt2, r50k_base, p50k_base, cl100k_base, o200k_base, or a tokenizer.json path")
	maxLength        = flag.Int("max_length", defaults.MaxLength, "max prompt + completion tokens; longer completions keep their start")
	maxPromptLength  = flag.Int("max_prompt_length", defaults.MaxPromptLength, "max prompt tokens; longer prompts keep their end")
	evalFraction     = flag.Float64("eval_fraction", defaults.EvalFraction, "fraction of pairs in the eval split (by id hash)")
	lowDistanceRatio = flag.Float64("low_distance_ratio", defaults.LowDistanceRatio, "pairs with edit_ratio <= this are low_distance")
	shards           = flag.Int("shards", defaults.Shards, "number of shard files")
	format           = flag.String("format", defaults.Format, "shard format: arrow or parquet")
	ref              = flag.String("ref", "", "reference checkpoint directory (Hugging Face GPT-2): add reference log-probs; default: none (see pipelines/score)")
	refBatchSize     = flag.Int("ref_batch_size", defaults.RefBatchSize, "with --ref: sequences per reference forward pass (a pair is two)")
	chatTemplate     = flag.String("chat_template", "", "chat template for conversational pairs: plain, chatml, llama3 (default: the tokenizer's, else plain)")
	overwrite        = flag.Bool("overwrite", false, "replace an output directory that already holds a complete run")
)

func main() {
	flag.Parse()
	beam.Init()
	if err := run(context.Background(), optionsFromFlags(), *overwrite, os.Stdout); err != nil {
		// Not log.Fatalf: Beam routes the log package through slog at INFO
		// level, which would dress a fatal error up as an info line.
		fmt.Fprintln(os.Stderr, "preprocess:", err)
		os.Exit(1)
	}
}

func optionsFromFlags() transforms.PreprocessOptions {
	o := transforms.PreprocessOptions{
		Output: *output, Tokenizer: *tokenizer, MaxLength: *maxLength, MaxPromptLength: *maxPromptLength,
		EvalFraction: *evalFraction, LowDistanceRatio: *lowDistanceRatio, ChatTemplate: *chatTemplate, Shards: *shards,
		Format: *format, Ref: *ref, RefBatchSize: *refBatchSize,
	}
	for _, g := range strings.Split(*input, ",") {
		if g = strings.TrimSpace(g); g != "" {
			o.Inputs = append(o.Inputs, g)
		}
	}
	return o
}

// run checks the inputs and the output directory, runs the pipeline and
// prints the manifest's counts as a table.
func run(ctx context.Context, o transforms.PreprocessOptions, overwrite bool, w io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	files, err := transforms.ExpandInputs(ctx, o.Inputs)
	if err != nil {
		return err
	}
	if err := transforms.PrepareOutput(ctx, o.Output, overwrite); err != nil {
		return err
	}

	p, s := beam.NewPipelineWithRoot()
	if err := transforms.Preprocess(s, o); err != nil {
		return err
	}
	fmt.Fprintf(w, "preprocess: %d input file(s) → %s on %s\n", len(files), o.Output, runners.Name())
	stages := "ReadPairs → Dedupe → Tokenize → EditDistance → "
	if o.Ref != "" {
		stages += "RefLogProbs (" + o.Ref + ") → "
	}
	shardFormat := o.Format
	if shardFormat == "" {
		shardFormat = "arrow"
	}
	fmt.Fprintf(w, "preprocess: stages %sWriteArrow (%s shards, rejects, manifest)\n", stages, shardFormat)
	start := time.Now()
	if _, err := runners.Run(ctx, p); err != nil {
		return err
	}
	m, err := transforms.ReadManifest(ctx, o.Output)
	if err != nil {
		return fmt.Errorf("pipeline finished but wrote no readable manifest: %w", err)
	}
	fmt.Fprintf(w, "preprocess: done in %.1fs\n\n%s\noutput: %s\n", time.Since(start).Seconds(), transforms.SummaryTable(m), o.Output)
	return nil
}
