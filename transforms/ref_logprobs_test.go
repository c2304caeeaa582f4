package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/memfs"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	_ "go4.org/unsafe/assume-no-moving-gc"

	// Runners and filesystems (memfs://) by name.
	_ "github.com/dpopflow/dpopflow/runners"
	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

func init() {
	register.DoFn2x1[context.Context, schemas.Row, error](&collectRowsFn{})
}

// tinyConfig is small enough that a test pipeline scores dozens of pairs in
// well under a second, with a context short enough that some test prompts
// must be cut to fit.
var tinyConfig = gpt.Config{VocabSize: 258, NPositions: 32, NEmbd: 16, NLayer: 2, NHead: 2, LayerNormEpsilon: 1e-5}

// tinyCheckpoint saves a freshly initialised tiny model to a new directory and
// returns the directory with the model read back by gpt.Load, which the tests
// use as the independent reference (it never goes through Beam's filesystems
// or this package's cache).
func tinyCheckpoint(t testing.TB, seed int64) (string, *gpt.Model) {
	t.Helper()
	m, err := gpt.New(tinyConfig, seed)
	if err != nil {
		t.Fatalf("new model: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := m.Save(dir); err != nil {
		t.Fatalf("save checkpoint: %v", err)
	}
	back, err := gpt.Load(dir)
	if err != nil {
		t.Fatalf("load checkpoint: %v", err)
	}
	return dir, back
}

// testRows makes n byte-tokenised pairs of varied lengths. Every fifth has a
// prompt long enough that prompt+completion overflows tinyConfig's context.
func testRows(n int, seed int64) []schemas.Row {
	rng := rand.New(rand.NewSource(seed))
	tokens := func(k int) []int32 {
		out := make([]int32, k)
		for i := range out {
			out[i] = int32(rng.Intn(256))
		}
		return out
	}
	rows := make([]schemas.Row, n)
	for i := range rows {
		promptLen := 1 + rng.Intn(12)
		if i%5 == 0 {
			promptLen = 25 + rng.Intn(20)
		}
		chosen := append(tokens(1+rng.Intn(15)), 256)
		rejected := append([]int32(nil), chosen...)
		rejected[rng.Intn(len(rejected)-1)] = int32(rng.Intn(256))
		if i%3 == 0 {
			rejected = append(tokens(1+rng.Intn(15)), 256)
		}
		rows[i] = schemas.Row{
			ID:          fmt.Sprintf("%016x", rng.Uint64()),
			Split:       schemas.SplitTrain,
			PromptIDs:   tokens(promptLen),
			ChosenIDs:   chosen,
			RejectedIDs: rejected,
		}
	}
	return rows
}

// wantLogps scores one completion alone (a batch of one) with the model
// loaded by gpt.Load, keeping the last tokens of the prompt that fit.
func wantLogps(t testing.TB, m *gpt.Model, prompt, completion []int32) []float32 {
	t.Helper()
	keep := min(len(prompt), m.Config().NPositions+1-len(completion))
	lp, err := m.CompletionLogps([]gpt.Sequence{{Prompt: prompt[len(prompt)-keep:], Completion: completion}})
	if err != nil {
		t.Fatalf("direct CompletionLogps: %v", err)
	}
	return lp[0]
}

// checkScored compares every scored row with the direct computation: per token
// to 1e-4, and the sums to the sums of the stored per-token values.
func checkScored(t *testing.T, m *gpt.Model, in, got []schemas.Row) {
	t.Helper()
	if len(got) != len(in) {
		t.Fatalf("got %d rows, want %d", len(got), len(in))
	}
	byID := map[string]schemas.Row{}
	for _, r := range got {
		byID[r.ID] = r
	}
	for _, r := range in {
		g, ok := byID[r.ID]
		if !ok {
			t.Fatalf("row %s missing from the output", r.ID)
		}
		for _, c := range []struct {
			name   string
			ids    []int32
			logps  []float32
			sum    float32
			stored []int32
		}{
			{"chosen", r.ChosenIDs, g.RefChosenLogps, g.RefChosenLogp, g.ChosenIDs},
			{"rejected", r.RejectedIDs, g.RefRejectedLogps, g.RefRejectedLogp, g.RejectedIDs},
		} {
			want := wantLogps(t, m, r.PromptIDs, c.ids)
			if len(c.logps) != len(want) {
				t.Fatalf("row %s %s: %d log-probs, want one per token (%d)", r.ID, c.name, len(c.logps), len(want))
			}
			var sum float64
			for j := range want {
				if d := math.Abs(float64(c.logps[j] - want[j])); d > 1e-4 || math.IsNaN(d) {
					t.Errorf("row %s %s token %d: log-prob %v, direct %v", r.ID, c.name, j, c.logps[j], want[j])
				}
				if c.logps[j] >= 0 {
					t.Errorf("row %s %s token %d: log-prob %v is not negative", r.ID, c.name, j, c.logps[j])
				}
				sum += float64(c.logps[j])
			}
			if math.Abs(sum-float64(c.sum)) > 1e-4 {
				t.Errorf("row %s %s: sum %v, per-token values add to %v", r.ID, c.name, c.sum, sum)
			}
			if !equalInt32(c.stored, c.ids) {
				t.Errorf("row %s %s: token ids changed by scoring", r.ID, c.name)
			}
		}
		if !equalInt32(g.PromptIDs, r.PromptIDs) {
			t.Errorf("row %s: prompt ids changed by scoring (truncation must only affect the model input)", r.ID)
		}
	}
}

func equalInt32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// collectRowsFn writes each row as JSON to memfs (shared with the in-process
// Prism workers), so a test can read back what a pipeline produced.
type collectRowsFn struct {
	Dir string
}

func (f *collectRowsFn) ProcessElement(ctx context.Context, r schemas.Row) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	memfs.Write(f.Dir+"/"+r.ID+".json", b)
	return nil
}

func readCollected(t *testing.T, dir string) []schemas.Row {
	t.Helper()
	ctx := context.Background()
	fs := memfs.New(ctx)
	names, err := fs.List(ctx, dir+"/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []schemas.Row
	for _, n := range names {
		b, err := filesystem.Read(ctx, fs, n)
		if err != nil {
			t.Fatal(err)
		}
		var r schemas.Row
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// runRefLogProbs scores rows in a Prism pipeline and returns what came out.
func runRefLogProbs(t *testing.T, rows []schemas.Row, ckpt string, batchSize int) []schemas.Row {
	t.Helper()
	out := fmt.Sprintf("memfs://collect/%s", strings.ReplaceAll(t.Name(), "/", "_"))
	p, s := beam.NewPipelineWithRoot()
	scored := RefLogProbs(s, beam.CreateList(s, rows), ckpt, batchSize)
	passert.Count(s, scored, "scored rows", len(rows))
	beam.ParDo0(s, &collectRowsFn{Dir: out}, scored)
	if err := ptest.Run(p); err != nil {
		t.Fatalf("run RefLogProbs pipeline: %v", err)
	}
	return readCollected(t, out)
}

func TestRefLogProbsMatchesModel(t *testing.T) {
	dir, m := tinyCheckpoint(t, 1)
	rows := testRows(40, 2)
	for _, bs := range []int{1, 7, 32} {
		t.Run(fmt.Sprintf("batch%d", bs), func(t *testing.T) {
			checkScored(t, m, rows, runRefLogProbs(t, rows, dir, bs))
		})
	}
}

func TestRefLogProbsMemfsCheckpoint(t *testing.T) {
	dir, m := tinyCheckpoint(t, 3)
	url := "memfs://" + strings.ReplaceAll(t.Name(), "/", "_") + "/ckpt/"
	for _, f := range []string{ckptConfigFile, ckptWeightsFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		memfs.Write(url+f, b)
	}
	rows := testRows(12, 4)
	checkScored(t, m, rows, runRefLogProbs(t, rows, url, 8))

	sha, err := RefModelSHA256(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if sha != m.WeightsSHA256() || len(sha) != 64 {
		t.Errorf("RefModelSHA256 = %q, want the checkpoint's %q", sha, m.WeightsSHA256())
	}
}

// TestRefLogProbsLoadsOnce: however many bundles and DoFn instances (Setup
// runs per instance), a process reads a checkpoint once.
func TestRefLogProbsLoadsOnce(t *testing.T) {
	dir, _ := tinyCheckpoint(t, 5)
	before := refModelLoads.Load()
	if _, err := RefModelSHA256(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	rows := testRows(30, 6)
	runRefLogProbs(t, rows, dir, 2)
	runRefLogProbs(t, rows, dir, 4)
	if n := refModelLoads.Load() - before; n != 1 {
		t.Errorf("checkpoint read %d times in one process, want 1", n)
	}
}

func TestRefLogProbsCompletionTooLong(t *testing.T) {
	dir, _ := tinyCheckpoint(t, 7)
	rows := testRows(3, 8)
	rows[1].ChosenIDs = make([]int32, tinyConfig.NPositions+1)
	p, s := beam.NewPipelineWithRoot()
	RefLogProbs(s, beam.CreateList(s, rows), dir, 4)
	err := ptest.Run(p)
	if err == nil || !strings.Contains(err.Error(), "--max_length") || !strings.Contains(err.Error(), rows[1].ID) {
		t.Fatalf("scoring a completion longer than the context: err = %v, want one naming the pair and --max_length", err)
	}
}

func TestRefLogProbsMissingCheckpoint(t *testing.T) {
	_, err := RefModelSHA256(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("missing checkpoint: err = %v, want one naming config.json", err)
	}
}

func TestFitContext(t *testing.T) {
	ids := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(i)
		}
		return out
	}
	for _, c := range []struct {
		prompt, completion, nPos int
		wantPrompt               int // tokens kept, from the end; -1: an error
	}{
		{prompt: 5, completion: 5, nPos: 32, wantPrompt: 5},
		{prompt: 28, completion: 5, nPos: 32, wantPrompt: 28}, // 28+5-1 = 32 fits exactly
		{prompt: 29, completion: 5, nPos: 32, wantPrompt: 28},
		{prompt: 100, completion: 32, nPos: 32, wantPrompt: 1},
		{prompt: 3, completion: 33, nPos: 32, wantPrompt: -1},
		{prompt: 0, completion: 3, nPos: 32, wantPrompt: -1},
		{prompt: 3, completion: 0, nPos: 32, wantPrompt: -1},
	} {
		p := ids(c.prompt)
		seq, err := fitContext(p, ids(c.completion), c.nPos)
		if c.wantPrompt < 0 {
			if err == nil {
				t.Errorf("fitContext(%d, %d, %d): no error", c.prompt, c.completion, c.nPos)
			}
			continue
		}
		if err != nil {
			t.Errorf("fitContext(%d, %d, %d): %v", c.prompt, c.completion, c.nPos, err)
			continue
		}
		if !equalInt32(seq.Prompt, p[len(p)-c.wantPrompt:]) || len(seq.Completion) != c.completion {
			t.Errorf("fitContext(%d, %d, %d): prompt %v, want its last %d tokens", c.prompt, c.completion, c.nPos, seq.Prompt, c.wantPrompt)
		}
	}
}

// BenchmarkScoreRows measures reference scoring throughput (completion tokens
// per second) with the default model size on pairs of typical length.
func BenchmarkScoreRows(b *testing.B) {
	m, err := gpt.New(gpt.DefaultConfig(258), 1)
	if err != nil {
		b.Fatal(err)
	}
	ref := &refModel{ckpt: "bench", model: m}
	rows := testRows(64, 1)
	var tokens int
	for _, r := range rows {
		tokens += len(r.ChosenIDs) + len(r.RejectedIDs)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := scoreRows(ctx, ref, rows, 32); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
