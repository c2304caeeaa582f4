package transforms

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/memfs"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/tokenize"
)

// dirtyInput is a JSONL file with a known number of each defect.
type dirtyInput struct {
	lines   []string
	read    int64
	rejects map[string]int64
	dups    int64
	written int64
}

func jsonRecord(prompt, chosen, rejected any) string {
	b, err := json.Marshal(map[string]any{"prompt": prompt, "chosen": chosen, "rejected": rejected})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func chatMsg(role, content string) map[string]string {
	return map[string]string{"role": role, "content": content}
}

// makeDirtyInput builds the test input. With MaxLength = MaxPromptLength = 128
// (see dirtyOptions), a prompt of 128 bytes or more leaves no room for a completion.
func makeDirtyInput() dirtyInput {
	var d dirtyInput
	add := func(l string) { d.lines = append(d.lines, l) }
	var good []string
	for i := range 40 {
		c := fmt.Sprintf("Step 1: %d + %d = %d. Step 2: double it to get %d. The answer is %d.", i, i+1, 2*i+1, 4*i+2, 4*i+2)
		r := strings.Replace(c, fmt.Sprintf("= %d.", 2*i+1), fmt.Sprintf("= %d.", 2*i+3), 1)
		if i%4 == 0 {
			r = fmt.Sprintf("I think it is %d, not sure.", i*7) // far from chosen
		}
		good = append(good, jsonRecord(fmt.Sprintf("Q%d: what is (%d + %d) * 2?", i, i, i+1), c, r))
	}
	// Conversational pairs, one with an extra field.
	good = append(good,
		jsonRecord([]any{chatMsg("user", "Capital of France?")}, []any{chatMsg("assistant", "Paris.")}, []any{chatMsg("assistant", "Lyon.")}),
		jsonRecord([]any{chatMsg("system", "Be brief."), chatMsg("user", "2+2?")}, []any{chatMsg("assistant", "4")}, []any{chatMsg("assistant", "5")}),
	)
	good = append(good, `{"prompt":"Name a colour.","chosen":"Blue.","rejected":"Seven.","source":"hand","score":0.9}`)
	// A completion long enough to be truncated (kept, truncated=true).
	good = append(good, jsonRecord("Count:", strings.Repeat("one two three ", 20), "one two"))
	for _, l := range good {
		add(l)
	}
	d.written = int64(len(good))

	// Duplicates: exact copies, and copies that differ only by NFC form and
	// surrounding whitespace.
	add(good[3])
	add(good[3])
	add(good[7])
	add(jsonRecord(" Q5: what is (5 + 6) * 2?\n", mustField(good[5], "chosen"), mustField(good[5], "rejected")+"  "))
	add(jsonRecord("Caf\u00e9?", "yes", "no"))
	add(jsonRecord("Cafe\u0301?", "yes", "no")) // decomposed é: same id as the line above
	d.written++
	d.dups = 5

	d.rejects = map[string]int64{}
	reject := func(reason, line string) { add(line); d.rejects[reason]++ }
	reject(schemas.ReasonInvalidJSON, `{"prompt": "p", "chosen": "a", "rej`)
	reject(schemas.ReasonInvalidJSON, `not json at all`)
	reject(schemas.ReasonMissingField, `{"prompt":"p","chosen":"a"}`)
	reject(schemas.ReasonWrongType, `{"prompt":"p","chosen":3,"rejected":"b"}`)
	reject(schemas.ReasonEmptyCompletion, `{"prompt":"p","chosen":"","rejected":"b"}`)
	reject(schemas.ReasonInvalidUTF8, "{\"prompt\":\"p\xff\",\"chosen\":\"a\",\"rejected\":\"b\"}")
	reject(schemas.ReasonDegenerate, jsonRecord("p", "same answer", "same answer"))
	reject(schemas.ReasonDegenerate, jsonRecord("p", "same answer", " same answer\n"))
	reject(schemas.ReasonDegenerate, jsonRecord([]any{chatMsg("user", "hi")}, []any{chatMsg("assistant", "hello")}, []any{chatMsg("assistant", "hello")}))
	reject(schemas.ReasonPromptTooLong, jsonRecord(strings.Repeat("long prompt ", 11), "a", "b"))
	reject(schemas.ReasonEmptyPrompt, jsonRecord("", "a", "b"))
	d.read = int64(len(d.lines))
	return d
}

func mustField(line, name string) string {
	var m map[string]string
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		panic(err)
	}
	return m[name]
}

func dirtyOptions(input, output string, shards int) PreprocessOptions {
	o := DefaultPreprocessOptions()
	o.Inputs = []string{input}
	o.Output = output
	o.MaxLength = 128
	o.MaxPromptLength = 128
	o.EvalFraction = 0.3
	o.Shards = shards
	return o
}

// runPreprocess runs the whole pipeline on the default test runner (Prism).
func preprocessPrism(t *testing.T, o PreprocessOptions) schemas.Manifest {
	t.Helper()
	ctx := context.Background()
	if err := PrepareOutput(ctx, o.Output, true); err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	if err := Preprocess(s, o); err != nil {
		t.Fatal(err)
	}
	if err := ptest.Run(p); err != nil {
		t.Fatalf("run preprocess: %v", err)
	}
	m, err := ReadManifest(ctx, o.Output)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readShards decodes every shard the manifest lists, checking its sha256.
func readShards(t *testing.T, dir string, m schemas.Manifest) []schemas.Row {
	t.Helper()
	var all []schemas.Row
	for _, sh := range m.Shards {
		data, err := os.ReadFile(filepath.Join(dir, sh.Path))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sh.SHA256 {
			t.Errorf("%s: sha256 %x, manifest says %s", sh.Path, sum, sh.SHA256)
		}
		meta, rows, err := schemas.DecodeArrowFile(data)
		if err != nil {
			t.Fatalf("%s: %v", sh.Path, err)
		}
		if meta.Tokenizer != "byte" || meta.EOSID != tokenize.ByteEOS || meta.VocabSize != tokenize.ByteVocab || meta.MaxLength != 128 {
			t.Errorf("%s: metadata %+v", sh.Path, meta)
		}
		if int64(len(rows)) != sh.Rows {
			t.Errorf("%s: %d rows, manifest says %d", sh.Path, len(rows), sh.Rows)
		}
		if !slices.IsSortedFunc(rows, func(a, b schemas.Row) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("%s: rows not sorted by id", sh.Path)
		}
		all = append(all, rows...)
	}
	return all
}

func TestPreprocessDirtyInput(t *testing.T) {
	dir := t.TempDir()
	in := makeDirtyInput()
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, in.lines)
	out := filepath.Join(dir, "out")
	m := preprocessPrism(t, dirtyOptions(input, out, 3))

	c := m.Counts
	if err := c.Check(); err != nil {
		t.Error(err)
	}
	var wantRejected int64
	for _, n := range in.rejects {
		wantRejected += n
	}
	if c.Read != in.read || c.Rejected != wantRejected || c.Duplicates != in.dups || c.Written != in.written {
		t.Errorf("counts %+v; want read %d rejected %d duplicates %d written %d", c, in.read, wantRejected, in.dups, in.written)
	}
	if !sameCounts(m.RejectsByReason, in.rejects) {
		t.Errorf("rejects_by_reason %v, want %v", m.RejectsByReason, in.rejects)
	}
	if c.Truncated != 1 {
		t.Errorf("truncated %d, want 1", c.Truncated)
	}
	if len(m.Inputs) != 1 || m.Inputs[0].Path != input {
		t.Fatalf("inputs %+v", m.Inputs)
	}
	raw, _ := os.ReadFile(input)
	if sum := sha256.Sum256(raw); m.Inputs[0].SHA256 != hex.EncodeToString(sum[:]) || m.Inputs[0].Size != int64(len(raw)) {
		t.Errorf("input %+v; want size %d sha256 %x", m.Inputs[0], len(raw), sum)
	}

	rows := readShards(t, out, m)
	if int64(len(rows)) != c.Written {
		t.Fatalf("%d rows in shards, written %d", len(rows), c.Written)
	}
	var train, eval, low int64
	var sumDist float64
	for _, r := range rows {
		if r.Split != schemas.SplitFor(r.ID, 0.3) {
			t.Errorf("row %s split %s, SplitFor says %s", r.ID, r.Split, schemas.SplitFor(r.ID, 0.3))
		}
		if r.Split == schemas.SplitEval {
			eval++
		} else {
			train++
		}
		if r.LowDistance {
			low++
		}
		checkRowIDs(t, r)
		checkRowEdits(t, r, 0.15)
		sumDist += float64(r.EditDistance)
	}
	if train != c.Train || eval != c.Eval || low != c.LowDistance {
		t.Errorf("rows have train %d eval %d low %d; manifest %+v", train, eval, low, c)
	}
	if eval == 0 || train == 0 {
		t.Errorf("split train %d eval %d: want both non-empty at eval_fraction 0.3", train, eval)
	}
	if got, want := m.EditDistance.MeanDistance, sumDist/float64(len(rows)); absDiff(got, want) > 1e-9 {
		t.Errorf("mean distance %g, want %g", got, want)
	}
	var histTotal int64
	for _, b := range m.EditDistance.RatioHistogram {
		histTotal += b.Count
	}
	if len(m.EditDistance.RatioHistogram) != 20 || histTotal != c.Written {
		t.Errorf("histogram has %d bins totalling %d; want 20 totalling %d", len(m.EditDistance.RatioHistogram), histTotal, c.Written)
	}

	// The extra fields survive; the kept duplicate is the first occurrence.
	var sawExtra bool
	for _, r := range rows {
		if r.Extra == `{"score":0.9,"source":"hand"}` || r.Extra == `{"source":"hand","score":0.9}` {
			sawExtra = true
		}
	}
	if !sawExtra {
		t.Error("no row kept the extra fields of the record that had them")
	}

	// Rejects file: one JSON object per line, sorted by line, reasons as counted.
	data, err := os.ReadFile(filepath.Join(out, "rejects", "part-00000-of-00001.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var lastLine int64
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var r schemas.Reject
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("rejects line %q: %v", l, err)
		}
		if r.Line < lastLine || r.Source != input {
			t.Errorf("reject %+v out of order or from the wrong source", r)
		}
		lastLine = r.Line
		if r.Raw == "" && r.RawBase64 == "" {
			t.Errorf("reject %+v has no raw record", r)
		}
		got[r.Reason]++
	}
	if !sameCounts(got, in.rejects) {
		t.Errorf("rejects file reasons %v, want %v", got, in.rejects)
	}
}

// checkRowIDs checks that the byte tokenizer's ids are the row's texts.
func checkRowIDs(t *testing.T, r schemas.Row) {
	t.Helper()
	eos := tokenize.ByteEOS
	var byteTok tokenize.Byte
	if got := byteTok.Decode(r.PromptIDs); !strings.HasSuffix(r.Prompt, got) || (!r.Truncated && got != r.Prompt) {
		t.Errorf("row %s: prompt ids decode to %q, text %q", r.ID, got, r.Prompt)
	}
	for _, c := range []struct {
		text string
		ids  []int32
	}{{r.Chosen, r.ChosenIDs}, {r.Rejected, r.RejectedIDs}} {
		if len(c.ids) > 0 && c.ids[len(c.ids)-1] == eos {
			if got := byteTok.Decode(c.ids[:len(c.ids)-1]); got != c.text {
				t.Errorf("row %s: completion ids decode to %q, text %q", r.ID, got, c.text)
			}
		} else if !r.Truncated || !strings.HasPrefix(c.text, byteTok.Decode(c.ids)) {
			t.Errorf("row %s: completion without EOS is not a truncated prefix of %q", r.ID, c.text)
		}
	}
	if len(r.PromptIDs)+max(len(r.ChosenIDs), len(r.RejectedIDs)) > 128 {
		t.Errorf("row %s: %d prompt + %d/%d completion tokens exceed max_length 128", r.ID, len(r.PromptIDs), len(r.ChosenIDs), len(r.RejectedIDs))
	}
}

// checkRowEdits compares the stored edit fields with the textbook DP.
func checkRowEdits(t *testing.T, r schemas.Row, lowRatio float64) {
	t.Helper()
	d := levenshteinDP(r.ChosenIDs, r.RejectedIDs)
	ratio := float64(d) / float64(max(len(r.ChosenIDs), len(r.RejectedIDs)))
	first := -1
	for i := range max(len(r.ChosenIDs), len(r.RejectedIDs)) {
		if i >= len(r.ChosenIDs) || i >= len(r.RejectedIDs) || r.ChosenIDs[i] != r.RejectedIDs[i] {
			first = i
			break
		}
	}
	if int(r.EditDistance) != d || r.EditRatio != float32(ratio) || int(r.FirstDiff) != first || r.LowDistance != (ratio <= lowRatio) {
		t.Errorf("row %s: edits (%d, %g, %d, %v), DP says (%d, %g, %d, %v)", r.ID,
			r.EditDistance, r.EditRatio, r.FirstDiff, r.LowDistance, d, ratio, first, ratio <= lowRatio)
	}
}

func sameCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func absDiff(a, b float64) float64 {
	if a < b {
		return b - a
	}
	return a - b
}

func TestPrepareOutputRefusesCompleteOutput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := PrepareOutput(ctx, dir, false); err != nil {
		t.Fatalf("empty dir refused: %v", err)
	}
	for _, f := range []string{"manifest.json", "pairs/part-00000-of-00002.arrow", "pairs/part-00001-of-00002.arrow", "rejects/part-00000-of-00001.jsonl", "notes.txt"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := PrepareOutput(ctx, dir, false)
	if !errors.Is(err, ErrOutputExists) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("complete output without overwrite: err = %v; want ErrOutputExists naming %s and --overwrite", err, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		t.Fatal("refusal removed the manifest")
	}
	if err := PrepareOutput(ctx, dir, true); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	for f, want := range map[string]bool{"manifest.json": false, "pairs/part-00001-of-00002.arrow": false, "rejects/part-00000-of-00001.jsonl": false, "notes.txt": true} {
		if _, err := os.Stat(filepath.Join(dir, f)); (err == nil) != want {
			t.Errorf("after overwrite, %s exists = %v, want %v", f, err == nil, want)
		}
	}
}

// TestPreprocessDeterministicAcrossRunsAndShardCounts reruns the pipeline on
// memfs: the same options give byte-identical shards, and another shard count
// gives the same rows.
func TestPreprocessDeterministicAcrossRunsAndShardCounts(t *testing.T) {
	ctx := context.Background()
	root := "memfs://" + t.Name()
	input := root + "/in.jsonl"
	if err := writeFileAtomic(ctx, input, []byte(strings.Join(makeDirtyInput().lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	shardBytes := func(out string, m schemas.Manifest) ([][]byte, []schemas.Row) {
		var files [][]byte
		var rows []schemas.Row
		for _, sh := range m.Shards {
			data := readMemfs(t, joinPath(out, sh.Path))
			files = append(files, data)
			_, r, err := schemas.DecodeArrowFile(data)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r...)
		}
		slices.SortFunc(rows, func(a, b schemas.Row) int { return strings.Compare(a.ID, b.ID) })
		return files, rows
	}
	m1 := preprocessPrism(t, dirtyOptions(input, root+"/a", 3))
	m2 := preprocessPrism(t, dirtyOptions(input, root+"/b", 3))
	m3 := preprocessPrism(t, dirtyOptions(input, root+"/c", 5))
	f1, rows1 := shardBytes(root+"/a", m1)
	f2, _ := shardBytes(root+"/b", m2)
	f3, rows3 := shardBytes(root+"/c", m3)
	if len(f1) != 3 || len(f3) != 5 {
		t.Fatalf("%d and %d shards, want 3 and 5", len(f1), len(f3))
	}
	for i := range f1 {
		if !bytes.Equal(f1[i], f2[i]) {
			t.Errorf("shard %d differs between identical runs", i)
		}
	}
	if len(rows1) != len(rows3) {
		t.Fatalf("%d rows with 3 shards, %d with 5", len(rows1), len(rows3))
	}
	for i := range rows1 {
		a, _ := json.Marshal(rows1[i])
		b, _ := json.Marshal(rows3[i])
		if !bytes.Equal(a, b) {
			t.Errorf("row %s differs between shard counts", rows1[i].ID)
		}
	}
	if m1.Counts != m3.Counts || !sameCounts(m1.RejectsByReason, m3.RejectsByReason) {
		t.Errorf("counts differ between shard counts: %+v vs %+v", m1.Counts, m3.Counts)
	}
	if m1.RejectShards[0].SHA256 != m3.RejectShards[0].SHA256 {
		t.Error("rejects file differs between shard counts")
	}
}

func readMemfs(t *testing.T, path string) []byte {
	t.Helper()
	fs, err := filesystem.New(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	data, err := filesystem.Read(context.Background(), fs, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return data
}

// TestShardsReadableByArrowJS reads a written shard with Apache Arrow JS, an
// implementation that shares no code with ours. CI installs it with
// `npm ci --prefix tools/arrowjs`.
func TestShardsReadableByArrowJS(t *testing.T) {
	tool, _ := filepath.Abs("../tools/arrowjs")
	if _, err := os.Stat(filepath.Join(tool, "node_modules", "apache-arrow")); err != nil {
		t.Skip("tools/arrowjs/node_modules absent; run: npm ci --prefix tools/arrowjs")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("tools/arrowjs is installed but node is not on PATH")
	}
	dir := t.TempDir()
	in := makeDirtyInput()
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, in.lines)
	out := filepath.Join(dir, "out")
	m := preprocessPrism(t, dirtyOptions(input, out, 1))
	shard := filepath.Join(out, m.Shards[0].Path)
	_, rows, err := schemas.DecodeArrowFile(mustRead(t, shard))
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(node, filepath.Join(tool, "read.mjs"), shard, "3")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node read.mjs: %v", err)
	}
	var got struct {
		NumRows  int               `json:"num_rows"`
		Columns  []string          `json:"columns"`
		Metadata map[string]string `json:"metadata"`
		Rows     []struct {
			ID           string  `json:"id"`
			Split        string  `json:"split"`
			Chosen       string  `json:"chosen"`
			ChosenIDs    []int32 `json:"chosen_ids"`
			EditDistance int32   `json:"edit_distance"`
			EditRatio    float32 `json:"edit_ratio"`
			FirstDiff    int32   `json:"first_diff"`
			LowDistance  bool    `json:"low_distance"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("node output %s: %v", stdout, err)
	}
	var wantCols []string
	for _, f := range schemas.ArrowSchema(schemas.Metadata{}).Fields() {
		wantCols = append(wantCols, f.Name)
	}
	if got.NumRows != len(rows) || !slices.Equal(got.Columns, wantCols) {
		t.Errorf("arrow js: %d rows, columns %v; want %d rows, columns %v", got.NumRows, got.Columns, len(rows), wantCols)
	}
	if got.Metadata[schemas.MetaTokenizer] != "byte" || got.Metadata[schemas.MetaEOSID] != "256" {
		t.Errorf("arrow js metadata %v", got.Metadata)
	}
	if len(got.Rows) != 3 {
		t.Fatalf("arrow js returned %d rows, want 3", len(got.Rows))
	}
	for i, g := range got.Rows {
		w := rows[i]
		if g.ID != w.ID || g.Split != w.Split || g.Chosen != w.Chosen || !sameIDs(g.ChosenIDs, w.ChosenIDs) ||
			g.EditDistance != w.EditDistance || g.EditRatio != w.EditRatio || g.FirstDiff != w.FirstDiff || g.LowDistance != w.LowDistance {
			t.Errorf("row %d: arrow js read %+v, Go wrote %+v", i, g, w)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
