package transforms

// Tests of the portable path: the preprocessing and scoring pipelines
// submitted to a standalone job server (as they would be to Flink or Spark),
// preprocessing run entirely on a non-local filesystem, retried over its own
// output, and written as Parquet. What they protect is the promise in
// docs/running-at-scale.md: the same input gives byte-identical shards and
// manifest (but wall_seconds) whichever runner executes it.

import (
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"

	"github.com/dpopflow/dpopflow/runners" // also links the universal runner and memfs
	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/synth"
)

// portableInputs writes two small JSONL inputs (a few hundred pairs, with
// duplicates and planted defects, so every branch of the pipeline carries
// data) under dir, which may be a local directory or a memfs:// URL, and
// returns the glob matching them.
func portableInputs(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	cfgs := []synth.Config{
		{Seed: 11, Math: 150, ARC: 30, DuplicateFraction: 0.05, Dirty: true, DefectsPerKind: 2},
		{Seed: 12, Math: 80, ARC: 10, DuplicateFraction: 0.05},
	}
	for i, cfg := range cfgs {
		var buf bytes.Buffer
		if _, err := synth.WriteJSONL(&buf, cfg); err != nil {
			t.Fatal(err)
		}
		path := joinPath(dir, []string{"a.jsonl", "b.jsonl"}[i])
		fsys, err := filesystem.New(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := filesystem.Write(ctx, fsys, path, buf.Bytes()); err != nil {
			t.Fatalf("write input %s: %v", path, err)
		}
		fsys.Close()
	}
	return joinPath(dir, "*.jsonl")
}

func portableOptions(input, output string) PreprocessOptions {
	o := DefaultPreprocessOptions()
	o.Inputs = []string{input}
	o.Output = output
	o.Shards = 3
	return o
}

// runPreprocess builds the preprocessing pipeline and runs it on runner.
func runPreprocess(t *testing.T, runner string, o PreprocessOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, s := beam.NewPipelineWithRoot()
	if err := Preprocess(s, o); err != nil {
		t.Fatalf("build preprocess pipeline: %v", err)
	}
	if _, err := beam.Run(ctx, runner, p); err != nil {
		t.Fatalf("preprocess on %s: %v", runner, err)
	}
}

// startJobServer starts a standalone Prism job server for the test and points
// Beam's job flags at it (LOOPBACK: the SDK workers run in this process), as a
// user would with --runner=universal --endpoint=... --environment_type=LOOPBACK.
// The flags are restored and the server stopped when the test ends.
func startJobServer(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	endpoint, stop, err := runners.StartPrismJobServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	oldEnd, oldEnv := *jobopts.Endpoint, *jobopts.EnvironmentType
	*jobopts.Endpoint, *jobopts.EnvironmentType = endpoint, "LOOPBACK"
	t.Cleanup(func() { *jobopts.Endpoint, *jobopts.EnvironmentType = oldEnd, oldEnv })
}

// readTree returns every file under a local directory by slash-separated
// relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// wallSeconds matches the one manifest field that legitimately differs
// between two runs over the same input: how long the run took.
var wallSeconds = regexp.MustCompile(`"wall_seconds": [0-9.e+-]+`)

// sameOutput fails the test unless two output directories hold the same files
// with the same bytes, the manifest compared with wall_seconds blanked.
func sameOutput(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	names := func(m map[string][]byte) []string {
		var n []string
		for k := range m {
			n = append(n, k)
		}
		slices.Sort(n)
		return n
	}
	if na, nb := names(a), names(b); !slices.Equal(na, nb) {
		t.Fatalf("%s: different files:\n %q\n %q", what, na, nb)
	}
	for name, da := range a {
		db := b[name]
		if name == ManifestFile {
			da = wallSeconds.ReplaceAll(da, []byte(`"wall_seconds": 0`))
			db = wallSeconds.ReplaceAll(db, []byte(`"wall_seconds": 0`))
		}
		if !bytes.Equal(da, db) {
			t.Errorf("%s: %s differs (%d vs %d bytes)", what, name, len(da), len(db))
		}
	}
}

// checkOutput checks what a user of an output directory relies on: the file
// set the manifest lists, counts that reconcile with the input, and shards
// that decode to unique ids. It returns the manifest.
func checkOutput(t *testing.T, files map[string][]byte) schemas.Manifest {
	t.Helper()
	m, err := schemas.ParseManifest(files[ManifestFile])
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Counts.Check(); err != nil {
		t.Error(err)
	}
	if m.Counts.Written == 0 || m.Counts.Rejected == 0 || m.Counts.Duplicates == 0 {
		t.Errorf("counts %+v: want rows, rejects and duplicates all present in this input", m.Counts)
	}
	listed := map[string]bool{ManifestFile: true}
	seen := map[string]bool{}
	var rows int64
	for _, sh := range m.Shards {
		listed[sh.Path] = true
		data, ok := files[sh.Path]
		if !ok {
			t.Fatalf("manifest lists %s, not in the output", sh.Path)
		}
		if got := sha256Hex(data); got != sh.SHA256 {
			t.Errorf("%s: sha256 %s, manifest says %s", sh.Path, got, sh.SHA256)
		}
		_, got, err := schemas.DecodeShard(data)
		if err != nil {
			t.Fatalf("%s: %v", sh.Path, err)
		}
		if int64(len(got)) != sh.Rows {
			t.Errorf("%s: %d rows, manifest says %d", sh.Path, len(got), sh.Rows)
		}
		for _, r := range got {
			if seen[r.ID] {
				t.Errorf("id %s written twice", r.ID)
			}
			seen[r.ID] = true
		}
		rows += int64(len(got))
	}
	if rows != m.Counts.Written {
		t.Errorf("shards hold %d rows, manifest counts %d written", rows, m.Counts.Written)
	}
	for _, sh := range m.RejectShards {
		listed[sh.Path] = true
	}
	for name := range files {
		if !listed[name] {
			t.Errorf("output holds %s, which the manifest does not list (a leftover temporary file?)", name)
		}
	}
	return m
}

// TestPreprocessOnJobServerMatchesInProcess submits the pipeline through the
// portable path (job server, LOOPBACK workers: what Flink and Spark use) and
// compares every byte with the in-process Prism run.
func TestPreprocessOnJobServerMatchesInProcess(t *testing.T) {
	tmp := t.TempDir()
	input := portableInputs(t, filepath.Join(tmp, "in"))

	local := filepath.Join(tmp, "local")
	runPreprocess(t, "prism", portableOptions(input, local))

	startJobServer(t)
	portable := filepath.Join(tmp, "portable")
	runPreprocess(t, "universal", portableOptions(input, portable))

	a, b := readTree(t, local), readTree(t, portable)
	checkOutput(t, a)
	sameOutput(t, "in-process prism vs prism job server", a, b)
}

// TestPreprocessOnMemfs runs with input and output both on memfs://, the
// stand-in for gs:// in tests: nothing may assume a local path.
func TestPreprocessOnMemfs(t *testing.T) {
	ctx := context.Background()
	root := "memfs://" + strings.ReplaceAll(t.Name(), "/", "_")
	input := portableInputs(t, root+"/in")
	out := root + "/out"
	runPreprocess(t, "prism", portableOptions(input, out))

	fsys, err := filesystem.New(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	var paths []string
	for _, glob := range []string{out + "/*", out + "/*/*"} {
		found, err := fsys.List(ctx, glob)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, found...)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		data, err := filesystem.Read(ctx, fsys, p)
		if err != nil {
			t.Fatalf("read back %s: %v", p, err)
		}
		files[strings.TrimPrefix(p, out+"/")] = data
	}
	t.Cleanup(func() {
		rm := fsys.(filesystem.Remover)
		for _, glob := range []string{root + "/*/*", root + "/*/*/*"} {
			all, _ := fsys.List(ctx, glob)
			for _, p := range all {
				rm.Remove(ctx, p)
			}
		}
	})
	m := checkOutput(t, files)
	if len(m.Inputs) != 2 || !strings.HasPrefix(m.Inputs[0].Path, "memfs://") {
		t.Errorf("manifest inputs %+v, want the two memfs:// files", m.Inputs)
	}
	if _, err := ReadManifest(ctx, out); err != nil {
		t.Errorf("ReadManifest on memfs: %v", err)
	}
}

// TestShardWriteRetryIsIdempotent simulates a runner retrying the shard-write
// step (a worker lost after writing): the second attempt, with its input in a
// different order, must leave the same single file, not a second copy.
func TestShardWriteRetryIsIdempotent(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	rows := []schemas.Row{
		{ID: "c3", Split: schemas.SplitTrain, Prompt: "p", Chosen: "a", Rejected: "b", ChosenIDs: []int32{97, 256}, RejectedIDs: []int32{98, 256}, EditDistance: 1, EditRatio: 0.5},
		{ID: "a1", Split: schemas.SplitEval, Prompt: "q", Chosen: "x", Rejected: "y", ChosenIDs: []int32{120, 256}, RejectedIDs: []int32{121, 256}, EditDistance: 1, EditRatio: 0.5},
		{ID: "b2", Split: schemas.SplitTrain, Prompt: "r", Chosen: "u", Rejected: "v", ChosenIDs: []int32{117, 256}, RejectedIDs: []int32{118, 256}, EditDistance: 1, EditRatio: 0.5},
	}
	fn := &writeShardFn{Output: out, Shards: 2, Meta: schemas.Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 64}}
	attempt := func(order []schemas.Row) shardResult {
		i := 0
		next := func(r *schemas.Row) bool {
			if i == len(order) {
				return false
			}
			*r = order[i]
			i++
			return true
		}
		var res []shardResult
		if err := fn.ProcessElement(ctx, 1, func(*int) bool { return false }, next, func(r shardResult) { res = append(res, r) }); err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 {
			t.Fatalf("%d results from one shard", len(res))
		}
		return res[0]
	}
	first := attempt(rows)
	before := readTree(t, out)
	second := attempt([]schemas.Row{rows[2], rows[0], rows[1]})
	after := readTree(t, out)

	if !reflect.DeepEqual(first, second) {
		t.Errorf("retry reported %+v, first attempt %+v", second, first)
	}
	sameOutput(t, "shard write and its retry", before, after)
	if len(after) != 1 {
		t.Errorf("after a retry the output holds %d files, want 1: %v", len(after), slices.Sorted(maps.Keys(after)))
	}
	_, got, err := schemas.DecodeArrowFile(after[first.Path])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Errorf("shard holds %d rows after a retry, want %d", len(got), len(rows))
	}
}

// TestPreprocessRerunIsIdempotent reruns the whole pipeline into the output of
// a finished run, as a runner that restarts a failed job does (no cleanup in
// between), and then with PrepareOutput's --overwrite: same files, same bytes,
// no duplicate rows.
func TestPreprocessRerunIsIdempotent(t *testing.T) {
	tmp := t.TempDir()
	input := portableInputs(t, filepath.Join(tmp, "in"))
	out := filepath.Join(tmp, "out")
	o := portableOptions(input, out)

	runPreprocess(t, "prism", o)
	first := readTree(t, out)
	checkOutput(t, first)

	runPreprocess(t, "prism", o)
	sameOutput(t, "run and rerun over its output", first, readTree(t, out))

	if err := PrepareOutput(context.Background(), out, false); err == nil {
		t.Error("PrepareOutput without overwrite accepted a complete output")
	}
	if err := PrepareOutput(context.Background(), out, true); err != nil {
		t.Fatal(err)
	}
	runPreprocess(t, "prism", o)
	third := readTree(t, out)
	checkOutput(t, third)
	sameOutput(t, "run and overwrite run", first, third)
}

// TestScoreOnJobServerMatchesInProcess does for the scoring pipeline what
// TestPreprocessOnJobServerMatchesInProcess does for preprocessing: the
// reference log-probs, shards and manifest from a job server are the bytes
// the in-process run writes.
func TestScoreOnJobServerMatchesInProcess(t *testing.T) {
	ckpt, _ := tinyCheckpoint(t, 21)
	root := t.TempDir()
	in := writeScoreInput(t, filepath.Join(root, "in"), testRows(40, 22), 3)
	run := func(runner, out string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p, s := beam.NewPipelineWithRoot()
		if err := Score(s, ScoreOptions{Input: in.dir, Output: out, Ref: ckpt, BatchSize: 4}); err != nil {
			t.Fatalf("build score pipeline: %v", err)
		}
		if _, err := beam.Run(ctx, runner, p); err != nil {
			t.Fatalf("score on %s: %v", runner, err)
		}
	}
	local, portable := filepath.Join(root, "local"), filepath.Join(root, "portable")
	run("prism", local)
	startJobServer(t)
	run("universal", portable)

	a := readTree(t, local)
	if m := checkOutput(t, a); m.RefModel == "" {
		t.Error("scored manifest has no ref_model")
	}
	sameOutput(t, "score: in-process prism vs prism job server", a, readTree(t, portable))
}

// TestPreprocessParquetMatchesArrow writes the same input as Arrow and as
// Parquet shards: the same files by name (but the extension), the same rows,
// and a manifest that says which format it holds.
func TestPreprocessParquetMatchesArrow(t *testing.T) {
	tmp := t.TempDir()
	input := portableInputs(t, filepath.Join(tmp, "in"))
	run := func(format, out string) map[string][]byte {
		t.Helper()
		o := portableOptions(input, out)
		wo, err := o.WriteOptions()
		if err != nil {
			t.Fatal(err)
		}
		wo.Format = format
		p, s := beam.NewPipelineWithRoot()
		prep, err := Prepare(s, o)
		if err != nil {
			t.Fatal(err)
		}
		WriteArrow(s, prep.Rows, prep.Rejects, prep.Tallies, wo)
		if _, err := beam.Run(context.Background(), "prism", p); err != nil {
			t.Fatalf("preprocess to %s: %v", format, err)
		}
		return readTree(t, out)
	}
	arrowFiles := run(schemas.FormatArrow, filepath.Join(tmp, "arrow"))
	parquetFiles := run(schemas.FormatParquet, filepath.Join(tmp, "parquet"))
	ma, mp := checkOutput(t, arrowFiles), checkOutput(t, parquetFiles)
	if ma.Format != schemas.FormatArrow || mp.Format != schemas.FormatParquet {
		t.Errorf("manifest formats %q and %q, want arrow and parquet", ma.Format, mp.Format)
	}
	if len(ma.Shards) != len(mp.Shards) || ma.Counts != mp.Counts {
		t.Fatalf("arrow run %+v in %d shards, parquet run %+v in %d", ma.Counts, len(ma.Shards), mp.Counts, len(mp.Shards))
	}
	for i := range ma.Shards {
		pa, pp := ma.Shards[i].Path, mp.Shards[i].Path
		if strings.TrimSuffix(pa, ".arrow") != strings.TrimSuffix(pp, ".parquet") || !strings.HasSuffix(pp, ".parquet") {
			t.Errorf("shard %d: %s vs %s", i, pa, pp)
		}
		metaA, rowsA, err := schemas.DecodeShard(arrowFiles[pa])
		if err != nil {
			t.Fatal(err)
		}
		metaP, rowsP, err := schemas.DecodeShard(parquetFiles[pp])
		if err != nil {
			t.Fatal(err)
		}
		// Arrow decodes an empty list as empty, Parquet as nil: the same to a reader.
		for _, rows := range [][]schemas.Row{rowsA, rowsP} {
			for j := range rows {
				for _, ids := range []*[]int32{&rows[j].PromptIDs, &rows[j].ChosenIDs, &rows[j].RejectedIDs} {
					if len(*ids) == 0 {
						*ids = nil
					}
				}
			}
		}
		if metaA != metaP || !reflect.DeepEqual(rowsA, rowsP) {
			t.Errorf("shard %d: parquet holds different rows or metadata than arrow", i)
		}
	}
}
