package gpt

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"
)

func tinyConfig() Config {
	return Config{VocabSize: 13, NPositions: 20, NEmbd: 8, NLayer: 2, NHead: 2, LayerNormEpsilon: 1e-5}
}

// perturbed returns a model whose weights are all non-trivial (random LN
// weights and biases too), so every gradient path carries signal.
func perturbed(t *testing.T, cfg Config, seed int64) *Model {
	t.Helper()
	m, err := New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	for _, p := range m.Params() {
		for i := range p.Data {
			p.Data[i] += float32(rng.NormFloat64() * 0.2)
		}
	}
	return m
}

// TestModelGradient checks every parameter's gradient (a random sample of
// entries from each tensor) against central finite differences of a weighted
// sum of completion log-probs, in float64, through the whole model.
func TestModelGradient(t *testing.T) {
	m := perturbed(t, tinyConfig(), 1)
	m.setFloat64()
	rng := rand.New(rand.NewSource(2))
	seqs := randomSeqs(rng, 3, m.cfg.VocabSize, 14)
	weights := make([][]float64, len(seqs))
	for i, s := range seqs {
		weights[i] = make([]float64, len(s.Completion))
		for j := range weights[i] {
			weights[i][j] = rng.NormFloat64()
		}
	}
	loss := func(lp [][]float64) (float64, [][]float64, error) {
		var l float64
		for i := range lp {
			for j := range lp[i] {
				l += weights[i][j] * lp[i][j]
			}
		}
		return l, weights, nil
	}
	if _, _, err := m.forwardBackward64(seqs, loss); err != nil {
		t.Fatal(err)
	}
	analytic := map[*Param][]float64{}
	for _, p := range m.Params() {
		analytic[p] = append([]float64(nil), p.grad64...)
	}
	value := func() float64 { // forward only, through the float64 graph
		m.mu.Lock()
		defer m.mu.Unlock()
		_, lp, err := m.run(seqs, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, _, _ := loss(lp)
		return l
	}
	checked := 0
	for _, p := range m.Params() {
		idx := rng.Perm(len(p.data64))
		for _, k := range idx[:min(6, len(idx))] {
			const h = 1e-5
			orig := p.data64[k]
			p.data64[k] = orig + h
			plus := value()
			p.data64[k] = orig - h
			minus := value()
			p.data64[k] = orig
			num := (plus - minus) / (2 * h)
			if math.Abs(analytic[p][k]-num) > 1e-6+1e-5*math.Abs(num) {
				t.Errorf("%s[%d]: backward %.9g, finite difference %.9g", p.Name, k, analytic[p][k], num)
			}
			checked++
		}
	}
	t.Logf("checked %d entries across %d tensors", checked, len(m.Params()))
}

// TestLogpsIgnorePaddingAndBatch: a sequence scored alone, or in a batch with
// longer and shorter ones (more padding, other graph shapes), gets the same
// log-probs; ForwardBackward reports the same numbers as CompletionLogps.
func TestLogpsIgnorePaddingAndBatch(t *testing.T) {
	m := perturbed(t, Config{VocabSize: 30, NPositions: 64, NEmbd: 16, NLayer: 2, NHead: 4, LayerNormEpsilon: 1e-5}, 3)
	rng := rand.New(rand.NewSource(4))
	target := Sequence{Prompt: []int32{1, 2, 3, 4}, Completion: []int32{5, 6, 7}}
	alone, err := m.CompletionLogps([]Sequence{target})
	if err != nil {
		t.Fatal(err)
	}
	batch := append(randomSeqs(rng, 40, 30, 60), target)
	batch[7] = Sequence{Prompt: []int32{9}, Completion: []int32{9}} // shorter than target
	inBatch, err := m.CompletionLogps(batch)
	if err != nil {
		t.Fatal(err)
	}
	_, fb, err := m.ForwardBackward(batch, func(lp [][]float32) (float64, [][]float32, error) {
		return 0, zerosLike(lp), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]float32{inBatch[len(batch)-1], fb[len(batch)-1]} {
		if len(got) != 3 {
			t.Fatalf("got %d log-probs, want 3", len(got))
		}
		for j := range got {
			if math.Abs(float64(got[j]-alone[0][j])) > 2e-6 {
				t.Errorf("token %d: %.7f in a batch, %.7f alone", j, got[j], alone[0][j])
			}
		}
	}
	for i := range batch {
		if len(inBatch[i]) != len(batch[i].Completion) {
			t.Fatalf("seq %d: %d log-probs for %d completion tokens", i, len(inBatch[i]), len(batch[i].Completion))
		}
		for j := range inBatch[i] {
			if math.Abs(float64(inBatch[i][j]-fb[i][j])) > 2e-6 || inBatch[i][j] > 0 {
				t.Errorf("seq %d token %d: CompletionLogps %g, ForwardBackward %g", i, j, inBatch[i][j], fb[i][j])
			}
		}
	}
}

func zerosLike(lp [][]float32) [][]float32 {
	d := make([][]float32, len(lp))
	for i := range lp {
		d[i] = make([]float32, len(lp[i]))
	}
	return d
}

// meanNLL is the SFT loss: mean negative log-likelihood per completion token.
func meanNLL(lp [][]float32) (float64, [][]float32, error) {
	n := 0
	for _, s := range lp {
		n += len(s)
	}
	var l float64
	d := make([][]float32, len(lp))
	for i, s := range lp {
		d[i] = make([]float32, len(s))
		for j, v := range s {
			l -= float64(v) / float64(n)
			d[i][j] = -1 / float32(n)
		}
	}
	return l, d, nil
}

func TestForwardBackwardAccumulates(t *testing.T) {
	m := perturbed(t, tinyConfig(), 5)
	seqs := randomSeqs(rand.New(rand.NewSource(6)), 4, m.cfg.VocabSize, 16)
	if _, _, err := m.ForwardBackward(seqs, meanNLL); err != nil {
		t.Fatal(err)
	}
	once := map[string][]float32{}
	var norm float64
	for _, p := range m.Params() {
		once[p.Name] = append([]float32(nil), p.Grad...)
		for _, g := range p.Grad {
			norm += float64(g * g)
		}
	}
	if norm == 0 {
		t.Fatal("all gradients are zero")
	}
	if _, _, err := m.ForwardBackward(seqs, meanNLL); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		for i, g := range p.Grad {
			if want := 2 * once[p.Name][i]; math.Abs(float64(g-want)) > 1e-6+1e-5*math.Abs(float64(want)) {
				t.Fatalf("%s[%d]: %g after two calls, want 2×%g", p.Name, i, g, once[p.Name][i])
			}
		}
	}
	m.ZeroGrad()
	for _, p := range m.Params() {
		for _, g := range p.Grad {
			if g != 0 {
				t.Fatalf("%s not zero after ZeroGrad", p.Name)
			}
		}
	}
}

// TestTrainingLowersLoss: plain SGD on the returned gradients fits a fixed
// batch, i.e. the gradients point downhill in float32 too.
func TestTrainingLowersLoss(t *testing.T) {
	m, err := New(tinyConfig(), 7)
	if err != nil {
		t.Fatal(err)
	}
	seqs := randomSeqs(rand.New(rand.NewSource(8)), 4, m.cfg.VocabSize, 16)
	var first, last float64
	for step := 0; step < 60; step++ {
		m.ZeroGrad()
		loss, _, err := m.ForwardBackward(seqs, meanNLL)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
		}
		last = loss
		for _, p := range m.Params() {
			axpy(-0.5, p.Grad, p.Data)
		}
	}
	if !(last < 0.5*first) {
		t.Fatalf("loss went %.3f → %.3f in 60 SGD steps", first, last)
	}
}

func TestLossErrorsPropagate(t *testing.T) {
	m, _ := New(tinyConfig(), 1)
	seqs := []Sequence{{Prompt: []int32{1}, Completion: []int32{2, 3}}}
	boom := errors.New("boom")
	_, _, err := m.ForwardBackward(seqs, func([][]float32) (float64, [][]float32, error) { return 0, nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the loss function's error", err)
	}
	_, _, err = m.ForwardBackward(seqs, func([][]float32) (float64, [][]float32, error) {
		return 0, [][]float32{{1}}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "sequence 0 has 1 tokens, want 2") {
		t.Fatalf("err = %v, want a shape error", err)
	}
	for _, p := range m.Params() {
		for _, g := range p.Grad {
			if g != 0 {
				t.Fatalf("%s: gradient added although the loss failed", p.Name)
			}
		}
	}
}

func TestSequenceErrors(t *testing.T) {
	m, _ := New(tinyConfig(), 1)
	for _, tc := range []struct {
		seq  Sequence
		want string
	}{
		{Sequence{Completion: []int32{1}}, "empty prompt"},
		{Sequence{Prompt: make([]int32, 15), Completion: make([]int32, 7)}, "21 input tokens exceed n_positions 20"},
		{Sequence{Prompt: []int32{1}, Completion: []int32{13}}, "token id 13 outside vocabulary"},
	} {
		if _, err := m.CompletionLogps([]Sequence{tc.seq}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.seq, err, tc.want)
		}
	}
	// Exactly n_positions input tokens is fine.
	if _, err := m.CompletionLogps([]Sequence{{Prompt: make([]int32, 15), Completion: make([]int32, 6)}}); err != nil {
		t.Error(err)
	}
}

func TestNewDeterministicAndInit(t *testing.T) {
	cfg := DefaultConfig(258)
	a, _ := New(cfg, 42)
	b, _ := New(cfg, 42)
	c, _ := New(cfg, 43)
	if a.WeightsSHA256() != b.WeightsSHA256() || a.WeightsSHA256() == c.WeightsSHA256() {
		t.Fatal("same seed must give the same weights, another seed others")
	}
	std := func(x []float32) float64 {
		var s float64
		for _, v := range x {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s / float64(len(x)))
	}
	for _, p := range a.Params() {
		var want float64
		switch {
		case strings.HasSuffix(p.Name, "c_proj.weight"):
			want = 0.02 / math.Sqrt(2*float64(cfg.NLayer))
		case strings.HasSuffix(p.Name, ".weight") && !strings.Contains(p.Name, "ln_"):
			want = 0.02
		}
		if got := std(p.Data); math.Abs(got-want) > 0.1*want+1e-12 && !strings.Contains(p.Name, "ln_") {
			t.Errorf("%s: std %.4f, want %.4f", p.Name, got, want)
		}
		if strings.Contains(p.Name, "ln_") && strings.HasSuffix(p.Name, ".weight") && (p.Data[0] != 1 || std(p.Data) != 1) {
			t.Errorf("%s: LayerNorm weight not 1", p.Name)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	m := perturbed(t, tinyConfig(), 9)
	c := m.Clone()
	seqs := randomSeqs(rand.New(rand.NewSource(1)), 3, 13, 12)
	want, _ := m.CompletionLogps(seqs)
	m.Params()[0].Data[0] += 1 // must not leak into the clone
	got, _ := c.CompletionLogps(seqs)
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("clone changed with the original")
			}
		}
	}
	if m.Params()[0].Data[0] == c.Params()[0].Data[0] {
		t.Fatal("clone shares weights")
	}
}

// TestGenerate trains the model to continue 1,2,3,... and checks greedy
// decoding reproduces it, stops at eos, and respects maxNew.
func TestGenerate(t *testing.T) {
	m, _ := New(tinyConfig(), 3)
	seqs := []Sequence{{Prompt: []int32{1, 2}, Completion: []int32{3, 4, 5, 12}}, {Prompt: []int32{6}, Completion: []int32{7, 8, 12}}}
	for step := 0; step < 150; step++ {
		m.ZeroGrad()
		if _, _, err := m.ForwardBackward(seqs, meanNLL); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Params() {
			axpy(-0.5, p.Grad, p.Data)
		}
	}
	got, err := m.Generate([]int32{1, 2}, 10, 12)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{3, 4, 5, 12}; !equalIDs(got, want) {
		t.Fatalf("Generate = %v, want %v", got, want)
	}
	if got, _ := m.Generate([]int32{6}, 1, 12); !equalIDs(got, []int32{7}) {
		t.Fatalf("Generate(maxNew=1) = %v, want [7]", got)
	}
	// Stops when the context is full (n_positions 20).
	if got, _ := m.Generate(make([]int32, 18), 10, -1); len(got) != 3 {
		t.Fatalf("Generate from 18 tokens gave %d, want 3 (context 20 full after 2 more)", len(got))
	}
}

func equalIDs(a, b []int32) bool {
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

// TestFloat32GradientsMatchFloat64: the float32 training path (vectorised
// kernels) gives the same parameter gradients as the float64 path that the
// finite-difference check covers, on the default shape (head_dim 8).
func TestFloat32GradientsMatchFloat64(t *testing.T) {
	cfg := DefaultConfig(40)
	cfg.NPositions = 40
	m32 := perturbed(t, cfg, 12)
	m64 := m32.Clone()
	m64.setFloat64()
	seqs := randomSeqs(rand.New(rand.NewSource(13)), 5, cfg.VocabSize, 40)
	if _, _, err := m32.ForwardBackward(seqs, meanNLL); err != nil {
		t.Fatal(err)
	}
	_, _, err := m64.forwardBackward64(seqs, func(lp [][]float64) (float64, [][]float64, error) {
		n := 0
		for _, s := range lp {
			n += len(s)
		}
		d := make([][]float64, len(lp))
		for i := range lp {
			d[i] = make([]float64, len(lp[i]))
			for j := range d[i] {
				d[i][j] = -1 / float64(n)
			}
		}
		return 0, d, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range m32.Params() {
		q := m64.Params()[i]
		var num, den float64
		for k := range p.Grad {
			diff := float64(p.Grad[k]) - q.grad64[k]
			num += diff * diff
			den += q.grad64[k] * q.grad64[k]
		}
		if rel := math.Sqrt(num / den); !(rel < 1e-4) {
			t.Errorf("%s: float32 gradient differs from float64 by %.2g (relative L2)", p.Name, rel)
		}
	}
}

// TestGraphCacheEviction: more batch shapes than the cache holds still give
// the same answers (evicted graphs are rebuilt).
func TestGraphCacheEviction(t *testing.T) {
	m := perturbed(t, tinyConfig(), 14)
	seqs := randomSeqs(rand.New(rand.NewSource(15)), maxGraphs+3, m.cfg.VocabSize, 16)
	want, _, err := m.ForwardBackward(seqs[:1], meanNLL)
	if err != nil {
		t.Fatal(err)
	}
	for b := 2; b <= len(seqs); b++ { // one new graph per batch size
		if _, _, err := m.ForwardBackward(seqs[:b], meanNLL); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.graphs) > maxGraphs {
		t.Fatalf("%d graphs cached, limit %d", len(m.graphs), maxGraphs)
	}
	got, _, err := m.ForwardBackward(seqs[:1], meanNLL)
	if err != nil || got != want {
		t.Fatalf("after eviction: loss %v (err %v), want %v", got, err, want)
	}
}
