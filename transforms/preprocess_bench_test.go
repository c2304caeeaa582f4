package transforms

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/records"
)

// benchPairs is the size of the generated input for the preprocessing benchmarks.
const benchPairs = 100_000

// benchInput writes n generated standard pairs of ~200-byte completions whose
// rejected copy has ~5% of its bytes changed, as JSONL, and returns the path.
func benchInput(b *testing.B, dir string, n int) string {
	b.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	var sb strings.Builder
	for i := range n {
		x, y := rng.IntN(1000), rng.IntN(1000)
		chosen := []byte(fmt.Sprintf("First multiply %d by 3 to get %d. Then add %d to get %d. "+
			"Check: %d - %d = %d, which matches. Finally halve it: %d / 2 = %d. The answer is %d.",
			x, 3*x, y, 3*x+y, 3*x+y, y, 3*x, 3*x+y, (3*x+y)/2, (3*x+y)/2))
		rejected := slices.Clone(chosen)
		for range len(rejected) / 20 {
			rejected[rng.IntN(len(rejected))] = byte('0' + rng.IntN(10))
		}
		fmt.Fprintf(&sb, `{"prompt":"Problem %d: start from %d, triple it, add %d, halve the sum.","chosen":%q,"rejected":%q}`+"\n",
			i, x, y, chosen, rejected)
	}
	path := filepath.Join(dir, "bench.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchOptions(input, output string) PreprocessOptions {
	o := DefaultPreprocessOptions()
	o.Inputs = []string{input}
	o.Output = output
	return o
}

// BenchmarkPreprocess runs the whole pipeline on Prism over 100k pairs.
//
//	go test ./transforms -run '^$' -bench 'BenchmarkPreprocess' -benchtime 2x
func BenchmarkPreprocess(b *testing.B) {
	dir := b.TempDir()
	input := benchInput(b, dir, benchPairs)
	b.ResetTimer()
	for i := range b.N {
		o := benchOptions(input, filepath.Join(dir, fmt.Sprintf("out%d", i)))
		p, s := beam.NewPipelineWithRoot()
		if err := Preprocess(s, o); err != nil {
			b.Fatal(err)
		}
		if err := ptest.Run(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchPairs*b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// BenchmarkPreprocessLoop does the same per-pair work as BenchmarkPreprocess
// in a plain loop on one goroutine, without Beam: parse, normalise and hash,
// dedupe, tokenize, edit distance, shard, sort, Arrow-encode and write. The
// ratio of the two is what Beam (encoding between stages, grouping, the
// runner) costs, or gains from using both cores.
func BenchmarkPreprocessLoop(b *testing.B) {
	dir := b.TempDir()
	input := benchInput(b, dir, benchPairs)
	b.ResetTimer()
	for i := range b.N {
		o := benchOptions(input, filepath.Join(dir, fmt.Sprintf("out%d", i)))
		if err := preprocessLoop(o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchPairs*b.N)/b.Elapsed().Seconds(), "pairs/s")
}

func preprocessLoop(o PreprocessOptions) error {
	data, err := os.ReadFile(o.Inputs[0])
	if err != nil {
		return err
	}
	pt, err := NewPairTokenizer(o.TokenizeOptions())
	if err != nil {
		return err
	}
	wo, err := o.WriteOptions()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	shards := make([][]schemas.Row, o.Shards)
	var rejects []schemas.Reject
	for n, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		p, rej := records.ParseLine(o.Inputs[0], int64(n+1), []byte(line))
		if rej != nil {
			rejects = append(rejects, *rej)
			continue
		}
		if Degenerate(*p) {
			rejects = append(rejects, RejectPair(*p, schemas.ReasonDegenerate, ""))
			continue
		}
		p.ID = PairID(*p)
		if seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		row, reason, detail := pt.Row(*p)
		if reason != "" {
			rejects = append(rejects, RejectPair(*p, reason, detail))
			continue
		}
		MeasureEdits(&row, o.LowDistanceRatio)
		k := ShardOf(row.ID, o.Shards)
		shards[k] = append(shards[k], row)
	}
	for i, rows := range shards {
		slices.SortFunc(rows, func(a, b schemas.Row) int { return strings.Compare(a.ID, b.ID) })
		enc, err := schemas.EncodeArrowFile(wo.Meta, rows)
		if err != nil {
			return err
		}
		path := filepath.Join(o.Output, PairsDir, schemas.ShardName(i, o.Shards, "arrow"))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			return err
		}
	}
	if len(rejects) != 0 {
		return fmt.Errorf("%d unexpected rejects in generated input", len(rejects))
	}
	return nil
}
