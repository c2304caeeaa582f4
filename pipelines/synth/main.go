// Command synth writes dpopflow's default preference data: seeded,
// deterministic MetaMath-DPO-style math pairs (low edit distance) and
// ARC-DPO-style multiple-choice pairs (high edit distance) in TRL's standard
// JSONL format, with a few exact duplicates and, with --dirty, malformed
// records for testing the reader's dead letters.
//
//	go run ./pipelines/synth --output=data.jsonl [--seed=1] [--math=1000] [--arc=300] [--dirty]
//
// --output=- writes to stdout. A summary of what was written goes to stderr.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dpopflow/dpopflow/transforms/synth"
)

func main() {
	def := synth.Default()
	output := flag.String("output", "", "file to write, or - for stdout (required)")
	seed := flag.Int64("seed", def.Seed, "random seed; the same flags give the same bytes")
	nMath := flag.Int("math", def.Math, "number of math pairs")
	nARC := flag.Int("arc", def.ARC, "number of multiple-choice questions (3 pairs each)")
	dups := flag.Float64("duplicate_fraction", def.DuplicateFraction, "exact duplicate lines, as a fraction of the pairs")
	dirty := flag.Bool("dirty", false, "also write malformed records (one per reject reason, several each) and a truncated last line")
	defects := flag.Int("defects_per_kind", 3, "with --dirty: records of each defect kind")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: synth --output=FILE.jsonl [flags]\n\n"+
			"Writes the seeded synthetic preference data set dpopflow trains on by default.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *output == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg := synth.Config{Seed: *seed, Math: *nMath, ARC: *nARC, DuplicateFraction: *dups, Dirty: *dirty, DefectsPerKind: *defects}
	if err := run(*output, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func run(output string, cfg synth.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if output != "-" {
		// Write beside the target and rename, so a reader never sees half a file.
		tmp := output + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		st, err := synth.WriteJSONL(f, cfg)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", tmp, cerr)
		}
		if err == nil {
			err = os.Rename(tmp, output)
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("write %s: %w", output, err)
		}
		fmt.Fprintf(os.Stderr, "synth: wrote %s: %v\n", output, st)
		return nil
	}
	st, err := synth.WriteJSONL(w, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "synth: %v\n", st)
	return nil
}
