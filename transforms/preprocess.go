// Package transforms holds dpopflow's Beam stages, one composite per file
// (ReadPairs, Dedupe, Tokenize, EditDistance, RefLogProbs, WriteArrow), and
// Preprocess, the pipeline that chains them. The algorithms the stages call
// live in Beam-free packages below (records, tokenize, editdist).
package transforms

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/tokenize"
)

// PreprocessOptions are the settings of a preprocessing run (the flags of
// pipelines/preprocess).
type PreprocessOptions struct {
	Inputs           []string // globs: local paths, gs://, memfs://
	Output           string   // output directory
	Tokenizer        string   // tokenize.New spec
	MaxLength        int
	MaxPromptLength  int
	EvalFraction     float64
	LowDistanceRatio float64
	ChatTemplate     string // "" for the tokenizer's own, else plain/chatml/llama3
	Shards           int
	// Format is the shard file format: schemas.FormatArrow (also when empty)
	// or schemas.FormatParquet.
	Format string
	// Ref, when set, is a reference checkpoint directory (Hugging Face GPT-2;
	// local, gs://, memfs://): Preprocess then adds reference log-probs
	// (RefLogProbs) before writing, as pipelines/score would afterwards.
	Ref string
	// RefBatchSize is the number of sequences per reference forward pass
	// (a pair is two); used only with Ref.
	RefBatchSize int
}

// DefaultPreprocessOptions are the documented CLI defaults.
func DefaultPreprocessOptions() PreprocessOptions {
	return PreprocessOptions{
		Tokenizer:        tokenize.SpecByte,
		MaxLength:        1024,
		MaxPromptLength:  512,
		EvalFraction:     0.05,
		LowDistanceRatio: 0.15,
		Shards:           4,
		Format:           schemas.FormatArrow,
		RefBatchSize:     32,
	}
}

// TokenizeOptions are the Tokenize stage's share of the options.
func (o PreprocessOptions) TokenizeOptions() TokenizeOptions {
	return TokenizeOptions{Tokenizer: o.Tokenizer, MaxLength: o.MaxLength, MaxPromptLength: o.MaxPromptLength,
		ChatTemplate: o.ChatTemplate, EvalFraction: o.EvalFraction}
}

// Validate reports the first option that cannot work, before any pipeline is built.
func (o PreprocessOptions) Validate() error {
	switch {
	case len(o.Inputs) == 0:
		return errors.New("no input given (--input=GLOB[,GLOB])")
	case o.Output == "":
		return errors.New("no output directory given (--output=DIR)")
	case o.Shards < 1:
		return fmt.Errorf("shards %d: need at least 1", o.Shards)
	case o.LowDistanceRatio < 0 || o.LowDistanceRatio > 1:
		return fmt.Errorf("low_distance_ratio %g: want 0 <= r <= 1", o.LowDistanceRatio)
	case o.Format != "" && o.Format != schemas.FormatArrow && o.Format != schemas.FormatParquet:
		return fmt.Errorf("format %q: want %q or %q", o.Format, schemas.FormatArrow, schemas.FormatParquet)
	}
	if err := o.TokenizeOptions().Validate(); err != nil {
		return err
	}
	return o.validateRef()
}

// validateRef checks the reference options: the checkpoint loads (through the
// per-process cache, so the workers reuse it) and every sequence Tokenize can
// emit fits its context. The model reads prompt ++ completion minus its last
// token, so max_length may be n_positions + 1.
func (o PreprocessOptions) validateRef() error {
	if o.Ref == "" {
		return nil
	}
	if o.RefBatchSize < 1 {
		return fmt.Errorf("ref_batch_size %d: need at least 1", o.RefBatchSize)
	}
	ref, err := loadRefModel(context.Background(), o.Ref)
	if err != nil {
		return err
	}
	if nPos := ref.model.Config().NPositions; o.MaxLength > nPos+1 {
		return fmt.Errorf("max_length %d exceeds what the reference model %s can score (n_positions %d): "+
			"pass --max_length=%d or less", o.MaxLength, o.Ref, nPos, nPos+1)
	}
	return nil
}

// format is o.Format with the empty default made explicit.
func (o PreprocessOptions) format() string {
	if o.Format == "" {
		return schemas.FormatArrow
	}
	return o.Format
}

// WriteOptions loads the tokenizer (which also checks the spec) and returns
// what WriteArrow needs: the shard metadata and the manifest's fixed part.
func (o PreprocessOptions) WriteOptions() (WriteOptions, error) {
	pt, err := NewPairTokenizer(o.TokenizeOptions())
	if err != nil {
		return WriteOptions{}, err
	}
	tok := pt.Tok
	meta := schemas.Metadata{Tokenizer: tok.Name(), VocabSize: tok.VocabSize(), EOSID: tok.EOS(), MaxLength: o.MaxLength}
	return WriteOptions{
		Output: o.Output,
		Shards: o.Shards,
		Meta:   meta,
		Format: o.format(),
		Manifest: schemas.Manifest{
			SchemaVersion: schemas.SchemaVersion,
			Tokenizer:     meta.Tokenizer,
			VocabSize:     meta.VocabSize,
			EOSID:         meta.EOSID,
			Format:        o.format(),
			Options: schemas.Options{
				MaxLength:        o.MaxLength,
				MaxPromptLength:  o.MaxPromptLength,
				EvalFraction:     o.EvalFraction,
				LowDistanceRatio: o.LowDistanceRatio,
				ChatTemplate:     pt.Template.Name(),
				Shards:           o.Shards,
			},
			CreatedBy: "dpopflow preprocess",
		},
	}, nil
}

// Prepared is everything Preprocess computes before writing, so a caller can
// put a stage between (reference scoring) and then call WriteArrow.
type Prepared struct {
	Rows    beam.PCollection // schemas.Row, tokenized, edit distances filled
	Rejects beam.PCollection // schemas.Reject from every stage
	Tallies Tallies
}

// Prepare builds read → dedupe → tokenize → edit distance.
func Prepare(s beam.Scope, o PreprocessOptions) (Prepared, error) {
	if err := o.Validate(); err != nil {
		return Prepared{}, err
	}
	if _, err := NewPairTokenizer(o.TokenizeOptions()); err != nil {
		return Prepared{}, err
	}
	pairs, readRejects := ReadPairs(s, o.Inputs)
	unique, degenerate, duplicates := Dedupe(s, pairs)
	rows, tooLong := Tokenize(s, unique, o.TokenizeOptions())
	rows = EditDistance(s, rows, o.LowDistanceRatio)
	return Prepared{
		Rows:    rows,
		Rejects: beam.Flatten(s, readRejects, degenerate, tooLong),
		Tallies: Tallies{
			Read:       beam.Flatten(s, stats.CountElms(s, pairs), stats.CountElms(s, readRejects)),
			Duplicates: duplicates,
			Inputs:     HashInputs(s, o.Inputs),
		},
	}, nil
}

// Preprocess builds the whole preprocessing pipeline: read, dedupe, tokenize,
// edit distance, reference log-probs when o.Ref is set, then Arrow (or
// Parquet) shards, rejects and manifest under o.Output. With o.Ref the shards'
// metadata and the manifest record the checkpoint's weights sha256 as
// ref_model, exactly as pipelines/score does for an unscored output.
func Preprocess(s beam.Scope, o PreprocessOptions) error {
	wo, err := o.WriteOptions()
	if err != nil {
		return err
	}
	p, err := Prepare(s, o)
	if err != nil {
		return err
	}
	rows := p.Rows
	if o.Ref != "" {
		ctx := context.Background()
		ref, err := loadRefModel(ctx, o.Ref)
		if err != nil {
			return err
		}
		if v := ref.model.Config().VocabSize; wo.Meta.VocabSize > v {
			return fmt.Errorf("tokenizer %s has a vocabulary of %d, larger than the reference model's %d",
				wo.Meta.Tokenizer, wo.Meta.VocabSize, v)
		}
		sha, err := RefModelSHA256(ctx, o.Ref)
		if err != nil {
			return err
		}
		rows = RefLogProbs(s, rows, o.Ref, o.RefBatchSize)
		wo.Meta.RefModel = sha
		wo.Manifest.RefModel = sha
	}
	WriteArrow(s, rows, p.Rejects, p.Tallies, wo)
	return nil
}

// ErrOutputExists is returned by PrepareOutput for a complete output
// directory when overwriting was not asked for.
var ErrOutputExists = errors.New("output directory already holds a complete run (manifest.json); pass --overwrite to replace it")

// PrepareOutput readies dir for a run. A directory holding manifest.json is a
// finished run and is refused unless overwrite is set; then its manifest is
// removed first (so a crash mid-run leaves it marked incomplete) along with its
// shards and rejects, so a rerun with fewer shards leaves no stale files.
func PrepareOutput(ctx context.Context, dir string, overwrite bool) error {
	manifest := joinPath(dir, ManifestFile)
	fs, err := filesystem.New(ctx, manifest)
	if err != nil {
		return fmt.Errorf("output %s: %w", dir, err)
	}
	defer fs.Close()
	found, err := fs.List(ctx, manifest)
	if err != nil {
		return fmt.Errorf("check output %s: %w", dir, err)
	}
	if len(found) == 0 {
		return nil
	}
	if !overwrite {
		return fmt.Errorf("%s: %w", dir, ErrOutputExists)
	}
	rm, ok := fs.(filesystem.Remover)
	if !ok {
		return fmt.Errorf("overwrite %s: the filesystem cannot remove files; delete the directory yourself", dir)
	}
	old := []string{manifest}
	for _, glob := range []string{joinPath(dir, PairsDir, "part-*"), joinPath(dir, RejectsDir, "part-*")} {
		files, err := fs.List(ctx, glob)
		if err != nil {
			return fmt.Errorf("overwrite %s: list %s: %w", dir, glob, err)
		}
		old = append(old, files...)
	}
	for _, f := range old {
		if err := rm.Remove(ctx, f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("overwrite %s: remove %s: %w", dir, f, err)
		}
	}
	return nil
}
