package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/schemas"
)

// scoreInput is an unscored output directory written by hand (schemas'
// encoder, a hand-made manifest), independent of the preprocess pipeline.
type scoreInput struct {
	dir      string
	rows     []schemas.Row
	rejects  []schemas.Reject
	manifest schemas.Manifest
}

func putFile(t *testing.T, path string, data []byte) {
	t.Helper()
	ctx := context.Background()
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := filesystem.Write(ctx, fs, path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func getFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := readScoreFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeScoreInput writes rows round-robin into the given number of shards,
// two rejects, and a manifest whose counts reconcile with 3 duplicates.
func writeScoreInput(t *testing.T, dir string, rows []schemas.Row, shards int) scoreInput {
	t.Helper()
	meta := schemas.Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 64}
	m := schemas.Manifest{
		SchemaVersion: schemas.SchemaVersion, Tokenizer: "byte", VocabSize: 258, EOSID: 256, Format: "arrow",
		Options:   schemas.Options{MaxLength: 64, MaxPromptLength: 32, EvalFraction: 0.1, LowDistanceRatio: 0.15, Shards: shards},
		Inputs:    []schemas.InputFile{{Path: "data/in.jsonl", Size: 1234, SHA256: strings.Repeat("ab", 32)}},
		CreatedBy: "test",
	}
	parts := make([][]schemas.Row, shards)
	for i, r := range rows {
		r.Split = schemas.SplitFor(r.ID, 0.1)
		r.EditDistance, r.EditRatio, r.FirstDiff = int32(i%4), float32(i%4)/10, int32(i%3)
		r.LowDistance, r.Truncated, r.Extra = i%2 == 0, i%7 == 0, fmt.Sprintf(`{"n":%d}`, i)
		r.Prompt, r.Chosen, r.Rejected = fmt.Sprint("p", i), fmt.Sprint("c", i), fmt.Sprint("r", i)
		rows[i] = r
		parts[i%shards] = append(parts[i%shards], r)
		m.Counts.Written++
		if r.Split == schemas.SplitEval {
			m.Counts.Eval++
		} else {
			m.Counts.Train++
		}
		if r.LowDistance {
			m.Counts.LowDistance++
		}
		if r.Truncated {
			m.Counts.Truncated++
		}
	}
	for i, part := range parts {
		data, err := schemas.EncodeArrowFile(meta, part)
		if err != nil {
			t.Fatal(err)
		}
		rel := PairsDir + "/" + schemas.ShardName(i, shards, "arrow")
		putFile(t, joinPath(dir, rel), data)
		m.Shards = append(m.Shards, schemas.Shard{Path: rel, Rows: int64(len(part)), SHA256: sha256Hex(data)})
	}
	rejects := []schemas.Reject{
		{Source: "data/in.jsonl", Line: 3, Reason: schemas.ReasonInvalidJSON, Raw: `{"prompt": <|im_start|>`},
		{Source: "data/in.jsonl", Line: 9, Reason: schemas.ReasonDegenerate, Raw: `{"prompt":"a","chosen":"b","rejected":"b"}`},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range rejects {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	rel := RejectsDir + "/" + schemas.ShardName(0, 1, "jsonl")
	putFile(t, joinPath(dir, rel), buf.Bytes())
	m.RejectShards = []schemas.Shard{{Path: rel, Rows: 2, SHA256: sha256Hex(buf.Bytes())}}
	m.RejectsByReason = map[string]int64{schemas.ReasonInvalidJSON: 1, schemas.ReasonDegenerate: 1}
	m.Counts.Rejected, m.Counts.Duplicates = 2, 3
	m.Counts.Read = m.Counts.Written + m.Counts.Rejected + m.Counts.Duplicates
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, joinPath(dir, ManifestFile), data)
	return scoreInput{dir: dir, rows: rows, rejects: rejects, manifest: m}
}

func runScore(t *testing.T, o ScoreOptions) error {
	t.Helper()
	p, s := beam.NewPipelineWithRoot()
	if err := Score(s, o); err != nil {
		return err
	}
	return ptest.Run(p)
}

// readScored checks the output directory's integrity (every listed file has
// its recorded sha256 and row count, every shard says which model scored it)
// and returns its manifest, rows and rejects.
func readScored(t *testing.T, dir, wantRef string) (schemas.Manifest, []schemas.Row, []schemas.Reject) {
	t.Helper()
	m, err := ReadManifest(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows []schemas.Row
	for _, sh := range m.Shards {
		data := getFile(t, joinPath(dir, sh.Path))
		if got := sha256Hex(data); got != sh.SHA256 {
			t.Errorf("%s: sha256 %s, manifest says %s", sh.Path, got, sh.SHA256)
		}
		meta, part, err := schemas.DecodeArrowFile(data)
		if err != nil {
			t.Fatalf("decode %s: %v", sh.Path, err)
		}
		if meta.RefModel != wantRef {
			t.Errorf("%s: schema ref_model %q, want %q", sh.Path, meta.RefModel, wantRef)
		}
		if int64(len(part)) != sh.Rows {
			t.Errorf("%s: %d rows, manifest says %d", sh.Path, len(part), sh.Rows)
		}
		rows = append(rows, part...)
	}
	var rejects []schemas.Reject
	for _, sh := range m.RejectShards {
		for _, line := range strings.Split(strings.TrimSpace(string(getFile(t, joinPath(dir, sh.Path)))), "\n") {
			var r schemas.Reject
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", sh.Path, err)
			}
			rejects = append(rejects, r)
		}
	}
	return m, rows, rejects
}

// snapshot maps every file under a local directory to its sha256.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = sha256Hex(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestScoreEndToEnd(t *testing.T) {
	ckpt, model := tinyCheckpoint(t, 11)
	root := t.TempDir()
	in := writeScoreInput(t, filepath.Join(root, "in"), testRows(30, 12), 3)
	before := snapshot(t, in.dir)
	out := filepath.Join(root, "out")

	if err := runScore(t, ScoreOptions{Input: in.dir, Output: out, Ref: ckpt, BatchSize: 8}); err != nil {
		t.Fatalf("score: %v", err)
	}
	if after := snapshot(t, in.dir); !reflect.DeepEqual(before, after) {
		t.Errorf("scoring modified its input directory:\nbefore %v\nafter  %v", before, after)
	}

	sha := model.WeightsSHA256()
	m, rows, rejects := readScored(t, out, sha)
	if m.RefModel != sha {
		t.Errorf("manifest ref_model %q, want %q", m.RefModel, sha)
	}
	if m.Counts != in.manifest.Counts {
		t.Errorf("counts %+v, want the input's %+v", m.Counts, in.manifest.Counts)
	}
	if len(m.Shards) != len(in.manifest.Shards) {
		t.Errorf("%d shards, want the input's %d", len(m.Shards), len(in.manifest.Shards))
	}
	if !reflect.DeepEqual(m.RejectsByReason, in.manifest.RejectsByReason) || !reflect.DeepEqual(rejects, in.rejects) {
		t.Errorf("rejects %v (%v), want the input's %v (%v)", rejects, m.RejectsByReason, in.rejects, in.manifest.RejectsByReason)
	}
	if !reflect.DeepEqual(m.Inputs, in.manifest.Inputs) || m.Options != in.manifest.Options || m.Tokenizer != "byte" {
		t.Errorf("provenance not carried over: inputs %v options %+v tokenizer %q", m.Inputs, m.Options, m.Tokenizer)
	}
	checkScored(t, model, in.rows, rows)
	// Everything but the ref_* columns is the input row, untouched.
	byID := map[string]schemas.Row{}
	for _, r := range rows {
		r.RefChosenLogps, r.RefRejectedLogps, r.RefChosenLogp, r.RefRejectedLogp = nil, nil, 0, 0
		byID[r.ID] = r
	}
	for _, r := range in.rows {
		if !reflect.DeepEqual(byID[r.ID], r) {
			t.Errorf("row %s changed by scoring:\n got %+v\nwant %+v", r.ID, byID[r.ID], r)
		}
	}
}

// TestScoreIndependentOfShardsAndBatch scores the same pairs stored as 1 and
// as 4 shards, with different batch sizes, once on local disk and once on
// memfs://, and expects the same log-probs for every pair.
func TestScoreIndependentOfShardsAndBatch(t *testing.T) {
	ckpt, model := tinyCheckpoint(t, 13)
	root := t.TempDir()
	rows := testRows(24, 14)
	a := writeScoreInput(t, filepath.Join(root, "a"), append([]schemas.Row(nil), rows...), 1)
	b := writeScoreInput(t, "memfs://score-shards/b", append([]schemas.Row(nil), rows...), 4)
	if err := runScore(t, ScoreOptions{Input: a.dir, Output: filepath.Join(root, "a-out"), Ref: ckpt, BatchSize: 32}); err != nil {
		t.Fatalf("score 1 shard: %v", err)
	}
	// Overwrite: memfs lives as long as the process, which -count>1 reuses.
	if err := runScore(t, ScoreOptions{Input: b.dir, Output: "memfs://score-shards/b-out", Ref: ckpt, BatchSize: 3, Overwrite: true}); err != nil {
		t.Fatalf("score 4 shards on memfs: %v", err)
	}
	_, ra, _ := readScored(t, filepath.Join(root, "a-out"), model.WeightsSHA256())
	_, rb, _ := readScored(t, "memfs://score-shards/b-out", model.WeightsSHA256())
	if len(ra) != len(rows) || len(rb) != len(rows) {
		t.Fatalf("got %d and %d rows, want %d", len(ra), len(rb), len(rows))
	}
	byID := map[string]schemas.Row{}
	for _, r := range ra {
		byID[r.ID] = r
	}
	for _, r := range rb {
		o := byID[r.ID]
		for _, pair := range [][2][]float32{{r.RefChosenLogps, o.RefChosenLogps}, {r.RefRejectedLogps, o.RefRejectedLogps}} {
			if len(pair[0]) != len(pair[1]) {
				t.Fatalf("row %s: %d vs %d log-probs", r.ID, len(pair[0]), len(pair[1]))
			}
			for j := range pair[0] {
				if d := math.Abs(float64(pair[0][j] - pair[1][j])); d > 1e-5 {
					t.Errorf("row %s token %d: %v with 4 shards, batch 3; %v with 1 shard, batch 32", r.ID, j, pair[0][j], pair[1][j])
				}
			}
		}
	}
}

func TestScoreRefuses(t *testing.T) {
	ckpt, _ := tinyCheckpoint(t, 15)
	root := t.TempDir()
	in := writeScoreInput(t, filepath.Join(root, "in"), testRows(6, 16), 2)
	out := filepath.Join(root, "out")
	opts := ScoreOptions{Input: in.dir, Output: out, Ref: ckpt, BatchSize: 4}

	same := opts
	same.Output = in.dir + "/"
	if err := runScore(t, same); err == nil || !strings.Contains(err.Error(), "never modifies its input") {
		t.Errorf("output = input: err = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(in.dir, ManifestFile)); err != nil {
		t.Fatalf("input manifest gone after a refused run: %v", err)
	}

	if err := runScore(t, opts); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if err := runScore(t, opts); !errors.Is(err, ErrOutputExists) {
		t.Errorf("second run without overwrite: err = %v, want ErrOutputExists", err)
	}
	again := opts
	again.Overwrite = true
	if err := runScore(t, again); err != nil {
		t.Errorf("second run with overwrite: %v", err)
	}

	missing := opts
	missing.Input = filepath.Join(root, "nothing")
	if err := runScore(t, missing); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Errorf("input without manifest: err = %v", err)
	}

	// A shard changed after its manifest was written must not be scored.
	shard := joinPath(in.dir, in.manifest.Shards[1].Path)
	data := getFile(t, shard)
	putFile(t, shard, append(data, 0))
	corrupt := opts
	corrupt.Output, corrupt.Overwrite = filepath.Join(root, "out2"), false
	if err := runScore(t, corrupt); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("corrupted shard: err = %v, want a sha256 mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(root, "out2", ManifestFile)); err == nil {
		t.Error("a failed run wrote a manifest: the output claims to be complete")
	}
}
