package train

import (
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

// benchExamples: 32 math pairs fitted to the default model (d=32, 2 layers,
// 4 heads, context 128), the scale DESIGN.md's DPO/DPOP runs use.
func benchSetup(b *testing.B) (*gpt.Model, []Example) {
	m, err := gpt.New(gpt.DefaultConfig(testVocab), 1)
	if err != nil {
		b.Fatal(err)
	}
	rows := mathRows(32, 5, 0)
	ex := make([]Example, len(rows))
	for i := range rows {
		ex[i] = MakeExample(&rows[i], m.Config().NPositions)
	}
	return m, ex
}

// BenchmarkTrainStepDPOP is one DPOP optimizer step on 32 pairs (64 sequences):
// forward, loss graph, backward, clipping and Adam. Reports tokens/s.
func BenchmarkTrainStepDPOP(b *testing.B) {
	m, ex := benchSetup(b)
	obj, _ := NewObjective(LossDPOP, 0.3, 50)
	refs := &refSums{model: m.Clone(), compute: true, cache: map[*schemas.Row][2]float64{}}
	opt := NewAdam(m.Params(), 0)
	if _, _, err := forwardBackward(m, obj, refs, ex, 1); err != nil { // fills the reference cache
		b.Fatal(err)
	}
	tokens := 0
	b.ResetTimer()
	for b.Loop() {
		m.ZeroGrad()
		_, n, err := forwardBackward(m, obj, refs, ex, 1)
		if err != nil {
			b.Fatal(err)
		}
		ClipGradNorm(m.Params(), 1)
		opt.Update(m.Params(), 1e-4)
		tokens += n
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkScore is forward-only scoring (CompletionLogps) of 64 sequences, as
// the reference scoring and evaluation do. Reports tokens/s.
func BenchmarkScore(b *testing.B) {
	m, ex := benchSetup(b)
	var seqs []gpt.Sequence
	tokens := 0
	for _, e := range ex {
		seqs = append(seqs, e.Chosen, e.Rejected)
		tokens += len(e.Chosen.Prompt) + len(e.Chosen.Completion) + len(e.Rejected.Prompt) + len(e.Rejected.Completion)
	}
	n := 0
	for b.Loop() {
		if _, err := m.CompletionLogps(seqs); err != nil {
			b.Fatal(err)
		}
		n += tokens
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
}
