package train

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/dpopflow/dpopflow/train/gpt"
)

func testParams() []*gpt.Param {
	return []*gpt.Param{
		{Name: "w", Shape: []int{1, 2}, Data: []float32{1, -2}, Grad: []float32{0.5, -0.1}},
		{Name: "b", Shape: []int{1}, Data: []float32{0.3}, Grad: []float32{2}},
	}
}

// Two Adam steps computed by hand from the paper's update rule, in float64.
func TestAdamMatchesHandComputedSteps(t *testing.T) {
	params := testParams()
	const lr, wd = 0.01, 0.1
	a := NewAdam(params, wd)
	grads := [][]float64{{0.5, -0.1, 2}, {-0.2, 0.3, 1}}

	p := []float64{1, -2, 0.3}
	decayed := []bool{true, true, false} // "w" is a matrix, "b" a bias
	m := make([]float64, 3)
	v := make([]float64, 3)
	for step, g := range grads {
		params[0].Grad = []float32{float32(g[0]), float32(g[1])}
		params[1].Grad = []float32{float32(g[2])}
		if err := a.Update(params, lr); err != nil {
			t.Fatal(err)
		}
		k := float64(step + 1)
		for i := range p {
			m[i] = 0.9*m[i] + 0.1*g[i]
			v[i] = 0.999*v[i] + 0.001*g[i]*g[i]
			mh, vh := m[i]/(1-math.Pow(0.9, k)), v[i]/(1-math.Pow(0.999, k))
			if decayed[i] {
				p[i] *= 1 - lr*wd
			}
			p[i] -= lr * mh / (math.Sqrt(vh) + 1e-8)
		}
		got := []float32{params[0].Data[0], params[0].Data[1], params[1].Data[0]}
		for i := range p {
			if math.Abs(float64(got[i])-p[i]) > 1e-6 {
				t.Errorf("step %d param %d: %v, hand-computed %v", step+1, i, got[i], p[i])
			}
		}
	}
	// The first step of Adam moves every weight by about lr·sign(g).
	if a.Step != 2 {
		t.Errorf("Step = %d, want 2", a.Step)
	}
}

func TestLearningRateSchedule(t *testing.T) {
	const peak = 1e-3
	cases := []struct {
		step int
		want float64
	}{
		{0, peak / 11},      // warmup starts above zero: the first update counts
		{9, peak * 10 / 11}, // last warmup step
		{10, peak},          // cosine starts at the peak
		{55, 0.55 * peak},   // halfway: min + (peak−min)/2 with min = 0.1·peak
		{100, 0.1 * peak},   // the end
		{150, 0.1 * peak},   // past the end: stays at the floor
	}
	for _, c := range cases {
		if got := LearningRate(c.step, 10, 100, peak, 0.1); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("LearningRate(%d) = %v, want %v", c.step, got, c.want)
		}
	}
	for s := 10; s < 100; s++ {
		if LearningRate(s+1, 10, 100, peak, 0.1) > LearningRate(s, 10, 100, peak, 0.1) {
			t.Fatalf("schedule rises after warmup at step %d", s)
		}
	}
	if got := LearningRate(0, 0, 10, peak, 0); got != peak {
		t.Errorf("no warmup: first rate %v, want the peak", got)
	}
}

func TestClipGradNorm(t *testing.T) {
	params := []*gpt.Param{{Name: "a", Grad: []float32{3}}, {Name: "b", Grad: []float32{0, 4}}}
	if n := ClipGradNorm(params, 1); math.Abs(n-5) > 1e-9 {
		t.Errorf("norm %v, want 5", n)
	}
	if g := params[0].Grad[0]; math.Abs(float64(g)-0.6) > 1e-6 {
		t.Errorf("clipped a = %v, want 0.6", g)
	}
	if g := params[1].Grad[1]; math.Abs(float64(g)-0.8) > 1e-6 {
		t.Errorf("clipped b = %v, want 0.8", g)
	}
	// Below the limit nothing changes; 0 only measures.
	if n := ClipGradNorm(params, 2); math.Abs(n-1) > 1e-6 || math.Abs(float64(params[0].Grad[0])-0.6) > 1e-6 {
		t.Errorf("norm %v, grads %v: clipped below the limit", n, params[0].Grad)
	}
	params[0].Grad[0] = float32(math.NaN())
	if n := ClipGradNorm(params, 1); !math.IsNaN(n) {
		t.Errorf("NaN gradient gave norm %v", n)
	}
}

func TestAdamStateRoundTrip(t *testing.T) {
	params := testParams()
	a := NewAdam(params, 0.1)
	for i := 0; i < 3; i++ {
		if err := a.Update(params, 0.01); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "optimizer.safetensors")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := LoadAdam(path, params)
	if err != nil {
		t.Fatal(err)
	}
	if b.Step != 3 || b.WeightDecay != 0.1 || b.Beta2 != 0.999 {
		t.Errorf("loaded step %d wd %v β2 %v", b.Step, b.WeightDecay, b.Beta2)
	}
	for _, p := range params {
		for i := range a.M[p.Name] {
			if a.M[p.Name][i] != b.M[p.Name][i] || a.V[p.Name][i] != b.V[p.Name][i] {
				t.Fatalf("%s moments differ after reload", p.Name)
			}
		}
	}
	// Same state, same next update.
	p2 := testParams()
	copy(p2[0].Data, params[0].Data)
	copy(p2[1].Data, params[1].Data)
	a.Update(params, 0.01)
	b.Update(p2, 0.01)
	if params[0].Data[1] != p2[0].Data[1] || params[1].Data[0] != p2[1].Data[0] {
		t.Error("reloaded optimizer takes a different step")
	}
	if _, err := LoadAdam(path, append(params, &gpt.Param{Name: "extra", Data: []float32{1}})); err == nil {
		t.Error("state without a param's moments accepted")
	}
}
