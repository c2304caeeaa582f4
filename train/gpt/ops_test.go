package gpt

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// weightedSum is a test-only scalar Σ r⊙x, so that the gradient reaching the
// op under test is the arbitrary (non-uniform) r.
func weightedSum(x *G.Node, r []float64) *G.Node {
	o := &kernelOp{name: fmt.Sprintf("WeightedSum(%p)", &r[0]), inDims: []int{len(x.Shape())}, shape: tensor.Shape{}, diffWRT: []bool{true}}
	o.f64 = func(out []float64, in [][]float64) error { out[0] = dot(r, in[0]); return nil }
	o.back = func(_ G.Nodes, out, g *G.Node) (G.Nodes, error) {
		b := &kernelOp{name: fmt.Sprintf("WeightedSumGrad(%p)", &r[0]), inDims: []int{0, 0}, shape: x.Shape().Clone()}
		b.f64 = func(o []float64, in [][]float64) error {
			for i := range o {
				o[i] = r[i] * in[1][0]
			}
			return nil
		}
		return G.Nodes{apply(b, out, g)}, nil
	}
	return apply(o, x)
}

type testInput struct {
	name  string
	shape []int
	data  []float64
}

func randInput(rng *rand.Rand, name string, scale float64, shape ...int) testInput {
	n := 1
	for _, s := range shape {
		n *= s
	}
	d := make([]float64, n)
	for i := range d {
		d[i] = rng.NormFloat64() * scale
	}
	return testInput{name, shape, d}
}

// checkOpGrad compares the op's symbolic gradient (through its backward ops,
// run by gorgonia's tape) with central finite differences of the forward
// value, in float64, for every input entry (or a random sample of 30).
func checkOpGrad(t *testing.T, inputs []testInput, build func(in []*G.Node) *G.Node) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	g := G.NewGraph()
	nodes := make(G.Nodes, len(inputs))
	for i, in := range inputs {
		nodes[i] = G.NewTensor(g, tensor.Float64, len(in.shape), G.WithShape(in.shape...), G.WithName(in.name),
			G.WithValue(tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(in.data))))
	}
	out := build(nodes)
	r := make([]float64, out.Shape().TotalSize())
	for i := range r {
		r[i] = rng.NormFloat64()
	}
	cost := weightedSum(out, r)
	grads, err := G.Grad(cost, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	var value float64
	sink("cost", cost, func(v any) { value = v.([]float64)[0] })
	analytic := make([][]float64, len(inputs))
	for i := range grads {
		sink(fmt.Sprintf("grad%d", i), grads[i], func(v any) { analytic[i] = append([]float64(nil), v.([]float64)...) })
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	eval := func() float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return value
	}
	eval()
	want := analytic // later evaluations (perturbed inputs) fill a fresh slice
	analytic = make([][]float64, len(inputs))
	for i, in := range inputs {
		idx := rng.Perm(len(in.data))
		if len(idx) > 30 {
			idx = idx[:30]
		}
		for _, k := range idx {
			const h = 1e-5
			orig := in.data[k]
			in.data[k] = orig + h
			plus := eval()
			in.data[k] = orig - h
			minus := eval()
			in.data[k] = orig
			num := (plus - minus) / (2 * h)
			if got := want[i][k]; math.Abs(got-num) > 1e-6+1e-5*math.Abs(num) {
				t.Errorf("d/d%s[%d]: backward %.9g, finite difference %.9g", in.name, k, got, num)
			}
		}
	}
}

func TestGradEmbedding(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tok := &tokens{ids: []int{3, 1, 3, 0, 4, 4}, pos: []int{0, 1, 2, 0, 1, 2}}
	checkOpGrad(t, []testInput{randInput(rng, "wte", 1, 5, 3), randInput(rng, "wpe", 1, 4, 3)},
		func(in []*G.Node) *G.Node { return embedding(tok, in[0], in[1]) })
}

func TestGradLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	x := randInput(rng, "x", 2, 4, 6)
	x.data[0] += 5 // an off-centre row
	checkOpGrad(t, []testInput{x, randInput(rng, "w", 1, 6), randInput(rng, "b", 1, 6)},
		func(in []*G.Node) *G.Node { return normalize(in[0], in[1], in[2], 1e-5) })
}

func TestGradLinear(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	checkOpGrad(t, []testInput{randInput(rng, "x", 1, 5, 4), randInput(rng, "w", 1, 4, 7), randInput(rng, "b", 1, 7)},
		func(in []*G.Node) *G.Node { return linear(in[0], in[1], in[2]) })
}

func TestGradGelu(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	checkOpGrad(t, []testInput{randInput(rng, "x", 2, 6, 5)},
		func(in []*G.Node) *G.Node { return gelu(in[0]) })
}

func TestGradAttention(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const bsz, T, H, D = 2, 5, 2, 6
	checkOpGrad(t, []testInput{randInput(rng, "qkv", 1, bsz*T, 3*D)},
		func(in []*G.Node) *G.Node { return causalSelfAttention(in[0], bsz, T, H) })
}

func TestGradTargetLogp(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	tok := &tokens{tgt: []int{-1, 2, 0, -1, 6, 6, 1}}
	checkOpGrad(t, []testInput{randInput(rng, "h", 1, 7, 4), randInput(rng, "wte", 1, 7, 4)},
		func(in []*G.Node) *G.Node { return targetLogp(tok, in[0], in[1]) })
}

// TestAttentionMatchesNaive checks the attention kernel's values against the
// textbook softmax(q·kᵀ/√d + causal mask)·v, and that padding rows after a
// position never change it.
func TestAttentionMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	const bsz, T, H, D = 2, 6, 3, 9
	hd := D / H
	qkv := randInput(rng, "qkv", 1, bsz*T, 3*D).data
	out := make([]float64, bsz*T*D)
	attentionForward(out, qkv, bsz, T, H, D)
	for b := 0; b < bsz; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < T; i++ {
				at := func(row, part, c int) float64 { return qkv[(b*T+row)*3*D+part*D+h*hd+c] }
				w := make([]float64, T)
				var z float64
				for j := 0; j < T; j++ {
					if j > i {
						continue // masked: weight exp(−∞) = 0
					}
					var s float64
					for c := 0; c < hd; c++ {
						s += at(i, 0, c) * at(j, 1, c)
					}
					w[j] = math.Exp(s / math.Sqrt(float64(hd)))
					z += w[j]
				}
				for c := 0; c < hd; c++ {
					var want float64
					for j := 0; j <= i; j++ {
						want += w[j] / z * at(j, 2, c)
					}
					if got := out[(b*T+i)*D+h*hd+c]; math.Abs(got-want) > 1e-12 {
						t.Fatalf("b%d h%d t%d c%d: %g, want %g", b, h, i, c, got, want)
					}
				}
			}
		}
	}
}

// TestSgemmFast compares the float32 AVX2 path with a naive triple loop for
// every transpose combination and awkward sizes (tails in rows and columns).
func TestSgemmFast(t *testing.T) {
	if !haveFMA {
		t.Skip("no AVX2/FMA")
	}
	rng := rand.New(rand.NewSource(9))
	for _, sz := range [][3]int{{1, 1, 1}, {4, 16, 3}, {5, 24, 7}, {8, 8, 3}, {6, 16, 9}, {10, 40, 3}, {11, 33, 17}, {12, 48, 2}, {7, 37, 5}, {66, 258, 64}, {64, 192, 1536}, {13, 16, 0}, {2, 40, 300}, {33, 96, 512}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				a, b := make([]float32, m*k), make([]float32, k*n)
				for i := range a {
					a[i] = float32(rng.NormFloat64())
				}
				for i := range b {
					b[i] = float32(rng.NormFloat64())
				}
				lda, ldb := k, n
				if tA {
					lda = m
				}
				if tB {
					ldb = k
				}
				c := make([]float32, m*n)
				for i := range c {
					c[i] = 1
				}
				sgemmFast(tA, tB, m, n, k, a, lda, b, ldb, 1, c, n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						want := 1.0
						for p := 0; p < k; p++ {
							av, bv := a[i*k+p], b[p*n+j]
							if tA {
								av = a[p*m+i]
							}
							if tB {
								bv = b[j*k+p]
							}
							want += float64(av) * float64(bv)
						}
						if math.Abs(float64(c[i*n+j])-want) > 1e-4*(1+math.Sqrt(float64(k))) {
							t.Fatalf("%v tA=%v tB=%v: C[%d,%d] = %g, want %g", sz, tA, tB, i, j, c[i*n+j], want)
						}
					}
				}
			}
		}
	}
}

// TestAttentionFMAMatchesLoops: the float32 matmul-based attention (forward
// and backward) agrees with the dot-product loops that the float64 gradient
// checks cover, for head sizes 8 and 16 and a length with tails.
func TestAttentionFMAMatchesLoops(t *testing.T) {
	if !haveFMA {
		t.Skip("no AVX2/FMA")
	}
	rng := rand.New(rand.NewSource(10))
	for _, c := range []struct{ bsz, T, H, D int }{{2, 37, 4, 32}, {3, 48, 4, 64}, {1, 5, 2, 6}} {
		n := c.bsz * c.T
		rnd := func(k int) []float32 {
			x := make([]float32, k)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			return x
		}
		qkv, g := rnd(n*3*c.D), rnd(n*c.D)
		fast, slow := make([]float32, n*c.D), make([]float32, n*c.D)
		attentionForwardFMA(fast, qkv, c.bsz, c.T, c.H, c.D)
		attentionForwardLoops(slow, qkv, c.bsz, c.T, c.H, c.D)
		dfast, dslow := make([]float32, n*3*c.D), make([]float32, n*3*c.D)
		attentionBackwardFMA(dfast, qkv, g, c.bsz, c.T, c.H, c.D)
		attentionBackwardLoops(dslow, qkv, g, c.bsz, c.T, c.H, c.D)
		for _, pair := range [][2][]float32{{fast, slow}, {dfast, dslow}} {
			for i := range pair[0] {
				if math.Abs(float64(pair[0][i]-pair[1][i])) > 1e-5*(1+math.Abs(float64(pair[1][i]))) {
					t.Fatalf("%+v: element %d: %g (matmul) vs %g (loops)", c, i, pair[0][i], pair[1][i])
				}
			}
		}
	}
}

func TestExpfTanhf(t *testing.T) {
	for x := -90.0; x < 88.72; x += 0.0137 {
		got, want := float64(expf(float32(x))), math.Exp(float64(float32(x)))
		if want > 1e-37 && math.Abs(got-want) > 3e-7*want {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
		if th := float64(tanhf(float32(x))); math.Abs(th-math.Tanh(float64(float32(x)))) > 2e-7 {
			t.Fatalf("tanhf(%g) = %g, want %g", x, th, math.Tanh(x))
		}
	}
	if expf(float32(math.Inf(-1))) != 0 || !math.IsInf(float64(expf(100)), 1) {
		t.Fatal("expf limits")
	}
}

func TestExpSlice(t *testing.T) {
	var src []float32
	for x := -87.3; x < 88; x += 0.0173 {
		src = append(src, float32(x))
	}
	src = append(src, -1000, float32(math.Inf(-1))) // clamp: tiny, not NaN
	dst := make([]float32, len(src))
	expSlice(dst, src)
	for i, x := range src {
		want := math.Exp(float64(x))
		if math.Abs(float64(dst[i])-want) > 3e-7*want+1.2e-38 || math.IsNaN(float64(dst[i])) {
			t.Fatalf("exp(%g) = %g, want %g", x, dst[i], want)
		}
	}
}

// TestGeluFMA: the vectorised float32 gelu and its derivative agree with the
// float64 formulas.
func TestGeluFMA(t *testing.T) {
	if !haveFMA {
		t.Skip("no AVX2/FMA")
	}
	var x, g []float32
	for v := -12.0; v < 12; v += 0.0071 {
		x = append(x, float32(v))
		g = append(g, 1)
	}
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	geluForward(y, x)
	geluBackward(dx, x, g)
	y64 := make([]float64, len(x))
	x64 := make([]float64, len(x))
	for i, v := range x {
		x64[i] = float64(v)
	}
	geluForwardLoops(y64, x64)
	for i := range x {
		d := 0.5*(1+math.Tanh(geluC*(x64[i]+0.044715*x64[i]*x64[i]*x64[i]))) +
			0.5*x64[i]*(1-math.Pow(math.Tanh(geluC*(x64[i]+0.044715*math.Pow(x64[i], 3))), 2))*geluC*(1+3*0.044715*x64[i]*x64[i])
		if math.Abs(float64(y[i])-y64[i]) > 1e-6*(1+math.Abs(y64[i])) || math.Abs(float64(dx[i])-d) > 1e-6 {
			t.Fatalf("x=%g: gelu %g / %g, gelu' %g / %g", x[i], y[i], y64[i], dx[i], d)
		}
	}
}

// TestColSumBlocks: the blocked (and, for float32, vectorised) column sums
// agree with a plain float64 sum, for widths with and without a tail.
func TestColSumBlocks(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for _, sz := range [][2]int{{1536, 64}, {1000, 258}, {700, 7}, {2048, 40}, {100, 33}} {
		n, m := sz[0], sz[1]
		g := make([]float32, n*m)
		for i := range g {
			g[i] = float32(rng.NormFloat64())
		}
		out := make([]float32, m)
		for i := range out {
			out[i] = 123 // must be overwritten
		}
		colSum(out, g, m)
		for j := 0; j < m; j++ {
			var want float64
			for r := 0; r < n; r++ {
				want += float64(g[r*m+j])
			}
			if math.Abs(float64(out[j])-want) > 1e-4*math.Sqrt(float64(n)) {
				t.Fatalf("%v: column %d: %g, want %g", sz, j, out[j], want)
			}
		}
	}
}
