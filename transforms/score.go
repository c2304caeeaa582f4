package transforms

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*schemas.Shard)(nil)).Elem())
	register.DoFn3x1[context.Context, schemas.Shard, func(schemas.Row), error](&readShardFn{})
	register.DoFn3x1[context.Context, schemas.Shard, func(schemas.Reject), error](&readRejectsFn{})
	register.Emitter1[schemas.Reject]()
}

var (
	shardsRead  = beam.NewCounter("score", "shards_read")
	rowsRead    = beam.NewCounter("score", "rows_read")
	rejectsRead = beam.NewCounter("score", "rejects_read")
)

// ScoreOptions are the settings of a scoring run (the flags of pipelines/score).
type ScoreOptions struct {
	Input     string // a complete output directory (with manifest.json): local, gs://, memfs://
	Output    string // the new, scored output directory; never the input
	Ref       string // reference checkpoint directory (Hugging Face GPT-2)
	BatchSize int    // sequences per forward pass
	Overwrite bool   // replace a complete run already in Output
}

// Validate reports the first option that cannot work.
func (o ScoreOptions) Validate() error {
	switch {
	case o.Input == "":
		return errors.New("no input directory given (--input=DIR, a preprocess output)")
	case o.Output == "":
		return errors.New("no output directory given (--output=DIR)")
	case o.Ref == "":
		return errors.New("no reference checkpoint given (--ref=CKPT_DIR)")
	case o.BatchSize < 1:
		return fmt.Errorf("batch_size %d: need at least 1", o.BatchSize)
	case sameDir(o.Input, o.Output):
		return fmt.Errorf("output %s is the input directory: scoring writes a new directory and never modifies its input", o.Output)
	}
	return nil
}

// Score builds the pipeline that adds reference log-probs to an existing
// output directory: it reads the input's shards (each checked against the
// sha256 its manifest records), runs RefLogProbs, and writes a new directory
// with WriteArrow: the same rows, shard count, rejects, counts and shard format
// (Arrow or Parquet), plus the four ref_* columns and ref_model in the schema
// metadata and manifest.
//
// While building it reads the input manifest and loads the checkpoint (for its
// sha256, and so that a wrong path fails now rather than on a worker), and
// readies the output with PrepareOutput: a complete run already there is
// refused unless o.Overwrite, in which case it is removed.
func Score(s beam.Scope, o ScoreOptions) error {
	s = s.Scope("Score")
	if err := o.Validate(); err != nil {
		return err
	}
	ctx := context.Background()
	in, err := ReadManifest(ctx, o.Input)
	if err != nil {
		return fmt.Errorf("score %s (a complete dpopflow output has manifest.json): %w", o.Input, err)
	}
	if err := in.Counts.Check(); err != nil {
		return fmt.Errorf("input %s: %w", o.Input, err)
	}
	format := in.Format
	if format == "" {
		format = schemas.FormatArrow // manifests from before the format field
	}
	if format != schemas.FormatArrow && format != schemas.FormatParquet {
		return fmt.Errorf("input %s: manifest format %q: want %q or %q", o.Input, in.Format, schemas.FormatArrow, schemas.FormatParquet)
	}
	nShards := len(in.Shards)
	if nShards == 0 || (in.Options.Shards != 0 && in.Options.Shards != nShards) {
		return fmt.Errorf("input %s: manifest lists %d shards, options say %d", o.Input, nShards, in.Options.Shards)
	}
	ref, err := loadRefModel(ctx, o.Ref)
	if err != nil {
		return err
	}
	if v := ref.model.Config().VocabSize; in.VocabSize > v {
		return fmt.Errorf("input %s was tokenized with %s (vocabulary %d), larger than the reference model's %d",
			o.Input, in.Tokenizer, in.VocabSize, v)
	}
	if err := PrepareOutput(ctx, o.Output, o.Overwrite); err != nil {
		return err
	}

	sha := ref.model.WeightsSHA256()
	shards := make([]schemas.Shard, nShards)
	for i, sh := range in.Shards {
		shards[i] = schemas.Shard{Path: joinPath(o.Input, sh.Path), Rows: sh.Rows, SHA256: sh.SHA256}
	}
	rejectFiles := make([]schemas.Shard, len(in.RejectShards))
	for i, sh := range in.RejectShards {
		rejectFiles[i] = schemas.Shard{Path: joinPath(o.Input, sh.Path), Rows: sh.Rows, SHA256: sh.SHA256}
	}

	// One element per shard, then a reshuffle, so scoring spreads over workers
	// however few shards the input has.
	rows := beam.ParDo(s, &readShardFn{}, beam.CreateList(s, shards))
	rows = RefLogProbs(s, beam.Reshuffle(s, rows), o.Ref, o.BatchSize)
	rejects := beam.ParDo(s, &readRejectsFn{}, beam.CreateList(s, rejectFiles))

	// The writer recomputes everything the rows and rejects determine (shards,
	// written/train/eval/low_distance/truncated, edit statistics, rejects by
	// reason) and takes read, duplicates and inputs from the tallies, which
	// carry the input manifest's values over unchanged.
	out := in
	out.Counts = schemas.Counts{}
	out.Shards, out.RejectShards, out.RejectsByReason = nil, nil, nil
	out.EditDistance = schemas.EditStats{}
	out.RefModel = sha
	out.CreatedBy = "dpopflow score"
	out.WallSeconds = 0
	tallies := Tallies{
		Read:       beam.Create(s, int(in.Counts.Read)),
		Duplicates: beam.Create(s, int(in.Counts.Duplicates)),
		Inputs:     beam.CreateList(s, append([]schemas.InputFile{}, in.Inputs...)),
	}
	WriteArrow(s, rows, rejects, tallies, WriteOptions{
		Output: o.Output,
		Shards: nShards,
		Format: format, // the input's: scoring changes columns, not the file format
		Meta: schemas.Metadata{Tokenizer: in.Tokenizer, VocabSize: in.VocabSize, EOSID: in.EOSID,
			MaxLength: in.Options.MaxLength, RefModel: sha},
		Manifest: out,
	})
	return nil
}

// readVerified reads a file listed in a manifest and checks it is the file the
// manifest describes: a shard changed since (or half-copied) must not be
// scored and passed off as the original.
func readVerified(ctx context.Context, sh schemas.Shard) ([]byte, error) {
	data, err := readScoreFile(ctx, sh.Path)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(data); got != sh.SHA256 {
		return nil, fmt.Errorf("%s: sha256 %s, manifest says %s: the file changed after it was written", sh.Path, got, sh.SHA256)
	}
	return data, nil
}

func readScoreFile(ctx context.Context, path string) ([]byte, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// readShardFn emits the rows of one shard, Arrow or Parquet (told apart by
// their magic bytes).
type readShardFn struct{}

func (f *readShardFn) ProcessElement(ctx context.Context, sh schemas.Shard, emit func(schemas.Row)) error {
	data, err := readVerified(ctx, sh)
	if err != nil {
		return err
	}
	_, rows, err := schemas.DecodeShard(data)
	if err != nil {
		return fmt.Errorf("decode %s: %w", sh.Path, err)
	}
	if int64(len(rows)) != sh.Rows {
		return fmt.Errorf("%s: %d rows, manifest says %d", sh.Path, len(rows), sh.Rows)
	}
	for _, r := range rows {
		emit(r)
	}
	shardsRead.Inc(ctx, 1)
	rowsRead.Inc(ctx, int64(len(rows)))
	return nil
}

// readRejectsFn emits the dead letters of one rejects file, so the scored
// output keeps them: every record read stays accounted for.
type readRejectsFn struct{}

func (f *readRejectsFn) ProcessElement(ctx context.Context, sh schemas.Shard, emit func(schemas.Reject)) error {
	data, err := readVerified(ctx, sh)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	// A reject holds its whole raw record, which may be long.
	sc.Buffer(nil, len(data)+1)
	var n int64
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		n++
		var r schemas.Reject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s line %d: %w", sh.Path, n, err)
		}
		emit(r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", sh.Path, err)
	}
	if n != sh.Rows {
		return fmt.Errorf("%s: %d rejects, manifest says %d", sh.Path, n, sh.Rows)
	}
	rejectsRead.Inc(ctx, n)
	return nil
}

// sameDir reports whether two directory names denote the same directory, so
// that scoring cannot overwrite its own input. URLs compare as strings
// (without trailing slashes); local paths after resolving them.
func sameDir(a, b string) bool {
	a, b = strings.TrimRight(a, "/"), strings.TrimRight(b, "/")
	if a == b {
		return true
	}
	if strings.Contains(a, "://") || strings.Contains(b, "://") {
		return false
	}
	abs := func(p string) string {
		if q, err := filepath.Abs(p); err == nil {
			p = q
		}
		if q, err := filepath.EvalSymlinks(p); err == nil {
			p = q
		}
		return p
	}
	if abs(a) == abs(b) {
		return true
	}
	// Same directory under two names (a bind mount, a hard-linked path).
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}
