// Command full runs all of dpopflow on one machine: it generates the embedded
// default data (or reads --input), preprocesses it on Beam's Prism runner,
// trains a small SFT reference model (unless --ref is given), scores reference
// log-probs, trains DPOP and, for comparison, DPO from the same reference, and
// writes a report (report.html, report.md, summary.json, plots/) that shows the
// paper's failure mode measured on this data.
//
//	go run ./pipelines/full                      # everything, into ./dpopflow-out/
//	go run ./pipelines/full --input=pairs.jsonl  # your own TRL-format data
//
// Each stage writes into its own folder under --output and is skipped on a
// rerun when its output is complete and was made from the same inputs and
// settings, so a rerun after a crash resumes where it stopped (training
// resumes from its last checkpoint).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "go4.org/unsafe/assume-no-moving-gc"
)

func main() {
	o := defaultOptions()
	o.register(flag.CommandLine)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: full [flags]\n\n"+
			"Runs the whole dpopflow pipeline (generate → preprocess → SFT → score → DPOP + DPO → report)\n"+
			"into --output (default ./dpopflow-out). With no flags it uses the embedded default data.\n"+
			"Beam flags (--runner, --endpoint, ...) pass through to the preprocessing and scoring pipelines.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	beam.Init()
	// Prism logs every job transition at INFO; a person running this wants the
	// stage lines and progress bars, and only warnings from the runner.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "full: unexpected arguments %q\n", strings.Join(flag.Args(), " "))
		flag.Usage()
		os.Exit(2)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "full:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sum, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "full:", err)
		os.Exit(1)
	}
	fmt.Println(sum)
}
