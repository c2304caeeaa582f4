package gpt

import (
	"math/rand"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. The machine is shared, so
// CPU time per step is a steadier figure than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSeqs is the benchmark batch: B=32 sequences of exactly T=48 input
// positions (16 prompt tokens, 33 completion tokens), byte-level vocab.
func benchSeqs() []Sequence {
	rng := rand.New(rand.NewSource(1))
	seqs := make([]Sequence, 32)
	for i := range seqs {
		p, c := make([]int32, 16), make([]int32, 33)
		for j := range p {
			p[j] = int32(rng.Intn(258))
		}
		for j := range c {
			c[j] = int32(rng.Intn(258))
		}
		seqs[i] = Sequence{Prompt: p, Completion: c}
	}
	return seqs
}

func benchModel(b *testing.B) *Model {
	m, err := New(Config{VocabSize: 258, NPositions: 128, NEmbd: 64, NLayer: 2, NHead: 4, LayerNormEpsilon: 1e-5}, 1)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkTrainStep: one SFT step (ForwardBackward with a mean-NLL loss and
// a plain SGD update) at d=64, 2 layers, 4 heads, T=48, B=32, V=258.
func BenchmarkTrainStep(b *testing.B) {
	m := benchModel(b)
	seqs := benchSeqs()
	step := func() {
		m.ZeroGrad()
		if _, _, err := m.ForwardBackward(seqs, meanNLL); err != nil {
			b.Fatal(err)
		}
		for _, p := range m.Params() {
			axpy(-1e-3, p.Grad, p.Data)
		}
	}
	step() // builds the graph
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		step()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/step")
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/step")
	b.ReportMetric(float64(32*48)/sec, "tokens/s")
}

// BenchmarkCompletionLogps: forward-only scoring of the same batch.
func BenchmarkCompletionLogps(b *testing.B) {
	m := benchModel(b)
	seqs := benchSeqs()
	if _, err := m.CompletionLogps(seqs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := m.CompletionLogps(seqs); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/batch")
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/batch")
	b.ReportMetric(float64(32*48)/sec, "tokens/s")
}

func BenchmarkExpf(b *testing.B) {
	x := make([]float32, 1024)
	for i := range x {
		x[i] = float32(i)/100 - 5
	}
	var s float32
	for i := 0; i < b.N; i++ {
		for _, v := range x {
			s += expf(v)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/exp")
	_ = s
}

// BenchmarkTrainStepDefault: the default model (d=32, 2 layers, 4 heads) on a
// DPO-sized batch: 64 sequences (32 pairs) of 40 prompt + 80 completion tokens.
func BenchmarkTrainStepDefault(b *testing.B) {
	m, err := New(DefaultConfig(258), 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	seqs := make([]Sequence, 64)
	for i := range seqs {
		seqs[i] = Sequence{Prompt: make([]int32, 40), Completion: make([]int32, 80)}
		for j := range seqs[i].Completion {
			seqs[i].Completion[j] = int32(rng.Intn(258))
		}
	}
	if _, _, err := m.ForwardBackward(seqs, meanNLL); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		m.ZeroGrad()
		if _, _, err := m.ForwardBackward(seqs, meanNLL); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/step")
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/step")
	b.ReportMetric(float64(64*119)/sec, "tokens/s")
}
