package transforms

// Tests of preprocess --ref (reference log-probs inside the preprocessing
// run) and --format=parquet end to end: what preprocess --ref writes must be
// what pipelines/score writes from a plain preprocess output, and a Parquet
// output must be readable by Score and by the trainer's loader.

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train"
	"github.com/dpopflow/dpopflow/train/gpt"
	"github.com/dpopflow/dpopflow/transforms/synth"
)

// refTestConfig is the tiny model of the preprocess --ref tests: a context of
// 64, so max_length may be at most 65.
var refTestConfig = gpt.Config{VocabSize: 258, NPositions: 64, NEmbd: 16, NLayer: 1, NHead: 2, LayerNormEpsilon: 1e-5}

func refTestCheckpoint(t *testing.T) (dir, sha string) {
	t.Helper()
	m, err := gpt.New(refTestConfig, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "ckpt")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	sha, err = RefModelSHA256(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, sha
}

// refTestOptions preprocesses a small synthetic input (with defects and
// duplicates) into out, with max_length at the model's limit (n_positions + 1).
func refTestOptions(t *testing.T, input, out string) PreprocessOptions {
	t.Helper()
	o := DefaultPreprocessOptions()
	o.Inputs = []string{input}
	o.Output = out
	o.MaxLength = refTestConfig.NPositions + 1
	o.MaxPromptLength = 40
	o.Shards = 2
	o.RefBatchSize = 8
	return o
}

func refTestInput(t *testing.T, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := synth.WriteJSONL(&buf, synth.Config{Seed: 7, Math: 40, ARC: 4, DuplicateFraction: 0.1, Dirty: true, DefectsPerKind: 1}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "in.jsonl")
	ctx := context.Background()
	fsys, err := filesystem.New(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if err := filesystem.Write(ctx, fsys, path, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	return path
}

// readOutput reads every shard a manifest lists (either format), checking
// the file extension, the sha256 and the schema's ref_model.
func readOutput(t *testing.T, dir string, m schemas.Manifest) map[string]schemas.Row {
	t.Helper()
	rows := map[string]schemas.Row{}
	for _, sh := range m.Shards {
		if !strings.HasSuffix(sh.Path, "."+m.Format) {
			t.Errorf("%s: manifest format is %q", sh.Path, m.Format)
		}
		data := getFile(t, joinPath(dir, sh.Path))
		if got := sha256Hex(data); got != sh.SHA256 {
			t.Errorf("%s: sha256 %s, manifest says %s", sh.Path, got, sh.SHA256)
		}
		meta, part, err := schemas.DecodeShard(data)
		if err != nil {
			t.Fatalf("decode %s: %v", sh.Path, err)
		}
		if meta.RefModel != m.RefModel {
			t.Errorf("%s: schema ref_model %q, manifest %q", sh.Path, meta.RefModel, m.RefModel)
		}
		for _, r := range part {
			rows[r.ID] = r
		}
	}
	return rows
}

// TestPreprocessRefMatchesScore runs preprocess --ref, and separately a plain
// preprocess (as Parquet) followed by Score: the same rows with the same
// reference log-probs to 1e-6, the same ref_model. On the way it checks that
// Score reads Parquet and keeps the format, and that train.LoadData reads a
// scored Parquet output.
func TestPreprocessRefMatchesScore(t *testing.T) {
	tmp := t.TempDir()
	input := refTestInput(t, tmp)
	ckpt, sha := refTestCheckpoint(t)

	withRef := refTestOptions(t, input, filepath.Join(tmp, "with-ref"))
	withRef.Ref = ckpt
	mRef := preprocessPrism(t, withRef)

	plain := refTestOptions(t, input, filepath.Join(tmp, "plain"))
	plain.Format = schemas.FormatParquet
	mPlain := preprocessPrism(t, plain)
	if mPlain.Format != schemas.FormatParquet || mPlain.RefModel != "" {
		t.Errorf("plain parquet run: manifest format %q, ref_model %q", mPlain.Format, mPlain.RefModel)
	}
	scoredDir := filepath.Join(tmp, "scored")
	if err := runScore(t, ScoreOptions{Input: plain.Output, Output: scoredDir, Ref: ckpt, BatchSize: 8}); err != nil {
		t.Fatalf("score the parquet output: %v", err)
	}
	mScored, err := ReadManifest(context.Background(), scoredDir)
	if err != nil {
		t.Fatal(err)
	}

	if mRef.RefModel != sha || mScored.RefModel != sha {
		t.Errorf("ref_model: preprocess --ref %q, score %q, want %q", mRef.RefModel, mScored.RefModel, sha)
	}
	if mRef.Format != schemas.FormatArrow || mScored.Format != schemas.FormatParquet {
		t.Errorf("formats: preprocess --ref %q (want arrow), score of parquet %q (want parquet)", mRef.Format, mScored.Format)
	}
	if mRef.Counts != mScored.Counts || mRef.Counts.Written == 0 || mRef.Counts.Rejected == 0 {
		t.Errorf("counts: preprocess --ref %+v, preprocess+score %+v", mRef.Counts, mScored.Counts)
	}
	if err := mRef.Counts.Check(); err != nil {
		t.Error(err)
	}

	got, want := readOutput(t, withRef.Output, mRef), readOutput(t, scoredDir, mScored)
	if len(got) != len(want) {
		t.Fatalf("preprocess --ref wrote %d rows, preprocess+score %d", len(got), len(want))
	}
	const tol = 1e-6
	var maxDiff float64
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Fatalf("row %s missing from preprocess --ref", id)
		}
		if !equalInt32(g.ChosenIDs, w.ChosenIDs) || !equalInt32(g.RejectedIDs, w.RejectedIDs) || !equalInt32(g.PromptIDs, w.PromptIDs) {
			t.Fatalf("row %s: token ids differ", id)
		}
		for _, c := range []struct {
			name       string
			g, w       []float32
			gSum, wSum float32
		}{
			{"chosen", g.RefChosenLogps, w.RefChosenLogps, g.RefChosenLogp, w.RefChosenLogp},
			{"rejected", g.RefRejectedLogps, w.RefRejectedLogps, g.RefRejectedLogp, w.RefRejectedLogp},
		} {
			if len(c.g) != len(c.w) || len(c.g) == 0 {
				t.Fatalf("row %s %s: %d log-probs, score has %d", id, c.name, len(c.g), len(c.w))
			}
			for j := range c.w {
				d := math.Abs(float64(c.g[j] - c.w[j]))
				maxDiff = max(maxDiff, d)
				if !(d <= tol) {
					t.Errorf("row %s %s token %d: %v, score %v", id, c.name, j, c.g[j], c.w[j])
				}
			}
			// Sums of ~30 values near -5.5 are exact to float32's resolution there.
			if d := math.Abs(float64(c.gSum - c.wSum)); !(d <= tol*max(1, math.Abs(float64(c.wSum)))) {
				t.Errorf("row %s %s: sum %v, score %v", id, c.name, c.gSum, c.wSum)
			}
		}
	}
	t.Logf("%d rows, max per-token difference %.3g", len(want), maxDiff)

	// The trainer reads the scored Parquet output (shards told apart by magic).
	d, err := train.LoadData(context.Background(), scoredDir)
	if err != nil {
		t.Fatalf("train.LoadData on parquet: %v", err)
	}
	if !d.Scored() || int64(len(d.Train)+len(d.Eval)) != mScored.Counts.Written {
		t.Errorf("LoadData: scored %v, %d+%d rows, want %d scored", d.Scored(), len(d.Train), len(d.Eval), mScored.Counts.Written)
	}
}

// TestPreprocessRefValidate checks the options preprocess --ref refuses
// before building anything.
func TestPreprocessRefValidate(t *testing.T) {
	tmp := t.TempDir()
	ckpt, _ := refTestCheckpoint(t)
	o := refTestOptions(t, filepath.Join(tmp, "in.jsonl"), filepath.Join(tmp, "out"))
	o.Ref = ckpt
	if err := o.Validate(); err != nil {
		t.Fatalf("max_length = n_positions+1: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*PreprocessOptions)
		want string
	}{
		{"too long", func(o *PreprocessOptions) { o.MaxLength = refTestConfig.NPositions + 2 }, "--max_length=65"},
		{"default max_length", func(o *PreprocessOptions) { o.MaxLength = DefaultPreprocessOptions().MaxLength }, "n_positions 64"},
		{"batch", func(o *PreprocessOptions) { o.RefBatchSize = 0 }, "ref_batch_size"},
		{"missing checkpoint", func(o *PreprocessOptions) { o.Ref = filepath.Join(tmp, "nope") }, "nope"},
		{"format", func(o *PreprocessOptions) { o.Format = "csv" }, `format "csv"`},
	} {
		o := o
		c.edit(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
		}
	}
}
