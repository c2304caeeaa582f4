// Command score adds reference log-probs to a preprocessed output directory:
// it reads the Arrow shards of --input (checking each against its manifest),
// scores every pair's chosen and rejected completion with the GPT-2 checkpoint
// in --ref, and writes a new directory with the ref_* columns, the same rows,
// rejects and counts, and ref_model (the sha256 of the weights) in the schema
// metadata and manifest. The input directory is never modified.
//
//	go run ./pipelines/score --input=DIR --output=DIR --ref=CKPT_DIR [--batch_size=32] [--overwrite]
//
// It runs on Prism in this process unless --runner says otherwise (see package
// runners for Flink, Spark and Dataflow). Directories may be local paths or
// gs:// URLs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/metrics"
	_ "go4.org/unsafe/assume-no-moving-gc"

	"github.com/dpopflow/dpopflow/runners"
	"github.com/dpopflow/dpopflow/transforms"
)

func main() {
	var o transforms.ScoreOptions
	flag.StringVar(&o.Input, "input", "", "preprocessed output directory to score (must hold manifest.json)")
	flag.StringVar(&o.Output, "output", "", "new directory for the scored shards (not the input)")
	flag.StringVar(&o.Ref, "ref", "", "reference checkpoint directory (Hugging Face GPT-2: config.json + model.safetensors)")
	flag.IntVar(&o.BatchSize, "batch_size", 32, "sequences per forward pass (a pair is two)")
	flag.BoolVar(&o.Overwrite, "overwrite", false, "replace a complete run already in --output")
	flag.Usage = func() {
		w := flag.CommandLine.Output()
		fmt.Fprintf(w, "Usage: score --input=DIR --output=DIR --ref=CKPT_DIR [flags]\n\n"+
			"Adds the reference model's per-token log-probs of every chosen and rejected completion\n"+
			"(the ref_* columns DPO/DPOP training needs) to a preprocessed output, written as a new directory.\n\nFlags:\n")
		// Only this program's flags: Beam registers a hundred more, which would bury them.
		for _, name := range []string{"input", "output", "ref", "batch_size", "overwrite"} {
			f := flag.Lookup(name)
			fmt.Fprintf(w, "  --%s (default %q)\n    \t%s\n", f.Name, f.DefValue, f.Usage)
		}
		fmt.Fprintf(w, "\nBeam's flags pass through: --runner (default prism), --endpoint, --environment_type,\n"+
			"--project, --region, --staging_location, ... (see package runners).\n")
	}
	flag.Parse()
	beam.Init()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "score: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "score:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "score:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o transforms.ScoreOptions) error {
	start := time.Now()
	p, s := beam.NewPipelineWithRoot()
	if err := transforms.Score(s, o); err != nil {
		return err
	}
	res, err := runners.Run(ctx, p)
	if err != nil {
		return err
	}
	wall := time.Since(start).Seconds()

	m, err := transforms.ReadManifest(ctx, o.Output)
	if err != nil {
		return fmt.Errorf("run finished but the output is incomplete: %w", err)
	}
	pairs, tokens := counter(res, "pairs_scored"), counter(res, "tokens_scored")
	if pairs < 0 { // a runner that reports no metrics
		pairs = m.Counts.Written
	}
	fmt.Printf("score: %d pairs scored", pairs)
	if tokens >= 0 {
		fmt.Printf(", %d completion tokens, %.0f tokens/s", tokens, float64(tokens)/wall)
	}
	fmt.Printf(" in %.1fs on %s\n", wall, runners.Name())
	fmt.Printf("score: reference model sha256 %s\n", m.RefModel)
	fmt.Printf("score: wrote %s (%d shards, %d rejects carried over)\n", o.Output, len(m.Shards), m.Counts.Rejected)
	return nil
}

// counter sums a dpopflow counter over all steps, or returns -1 if the runner
// reported none.
func counter(res beam.PipelineResult, name string) int64 {
	if res == nil {
		return -1
	}
	found := false
	var sum int64
	q := res.Metrics().Query(func(r metrics.SingleResult) bool {
		return r.Namespace() == "dpopflow" && r.Name() == name
	})
	for _, c := range q.Counters() {
		found = true
		sum += c.Result()
	}
	if !found {
		return -1
	}
	return sum
}
