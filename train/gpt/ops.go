package gpt

// Custom gorgonia ops. gorgonia's own softmax, log-softmax, InverseSqrt
// gradient and innermost-axis ByIndices gradient are wrong in v0.9.18 (see
// DESIGN.md), so every non-trivial step of GPT-2 is a fused op here, with a
// hand-written backward op that SymDiff wires in. gorgonia supplies the graph,
// symbolic differentiation (chain rule, summing fan-in gradients) and the tape
// machine.

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernelOp is a gorgonia Op defined by a pair of typed kernels (float32 for
// training, float64 for gradient checks) and, when differentiable, a function
// building the backward nodes. The output buffer is owned by the op and reused
// across runs of the tape machine: the kernels overwrite it completely.
type kernelOp struct {
	name    string // also the hash: two nodes of equal name and inputs compute the same thing
	inDims  []int  // rank of each input, for the type signature
	shape   tensor.Shape
	f32     func(out []float32, in [][]float32) error
	f64     func(out []float64, in [][]float64) error
	diffWRT []bool
	back    func(in G.Nodes, out, grad *G.Node) (G.Nodes, error)

	buf *tensor.Dense
}

func (o *kernelOp) Arity() int { return len(o.inDims) }

func (o *kernelOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, 0, len(o.inDims)+1)
	for _, d := range o.inDims {
		ts = append(ts, tensorType(d, a))
	}
	ts = append(ts, tensorType(len(o.shape), a))
	return hm.NewFnType(ts...)
}

func tensorType(dims int, a hm.TypeVariable) hm.Type {
	if dims == 0 {
		return a
	}
	return G.TensorType{Dims: dims, Of: a}
}

func (o *kernelOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.shape.Clone(), nil }
func (o *kernelOp) ReturnsPtr() bool                               { return false }
func (o *kernelOp) CallsExtern() bool                              { return false }
func (o *kernelOp) OverwritesInput() int                           { return -1 }
func (o *kernelOp) String() string                                 { return o.name }
func (o *kernelOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, o.name) }
func (o *kernelOp) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

func (o *kernelOp) DiffWRT(n int) []bool {
	if o.diffWRT == nil {
		return make([]bool, n)
	}
	return o.diffWRT
}

func (o *kernelOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	if o.back == nil {
		return nil, fmt.Errorf("%s is not differentiable", o.name)
	}
	return o.back(in, out, grad)
}

func (o *kernelOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != len(o.inDims) {
		return nil, fmt.Errorf("%s: got %d inputs, want %d", o.name, len(vals), len(o.inDims))
	}
	dt := vals[0].Dtype()
	if len(o.shape) == 0 {
		// Scalar outputs (the loss) are returned as gorgonia scalars.
		switch dt {
		case tensor.Float32:
			out := []float32{0}
			if err := o.f32(out, raw[float32](vals)); err != nil {
				return nil, err
			}
			return G.NewF32(out[0]), nil
		case tensor.Float64:
			out := []float64{0}
			if err := o.f64(out, raw[float64](vals)); err != nil {
				return nil, err
			}
			return G.NewF64(out[0]), nil
		}
		return nil, fmt.Errorf("%s: unsupported dtype %v", o.name, dt)
	}
	if o.buf == nil || o.buf.Dtype() != dt {
		o.buf = tensor.New(tensor.Of(dt), tensor.WithShape(o.shape.Clone()...))
	}
	var err error
	switch dt {
	case tensor.Float32:
		err = o.f32(o.buf.Data().([]float32), raw[float32](vals))
	case tensor.Float64:
		err = o.f64(o.buf.Data().([]float64), raw[float64](vals))
	default:
		err = fmt.Errorf("unsupported dtype %v", dt)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return o.buf, nil
}

// raw returns the backing slices of the input values (scalars as 1-slices).
func raw[T float](vals []G.Value) [][]T {
	out := make([][]T, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case *tensor.Dense:
			out[i] = v.Data().([]T)
		case *G.F32:
			out[i] = any([]float32{float32(*v)}).([]T)
		case *G.F64:
			out[i] = any([]float64{float64(*v)}).([]T)
		}
	}
	return out
}

// apply adds op o to the graph; construction errors are programming errors
// (shapes are all known when a graph is built), so they panic and buildGraph
// turns the panic back into an error.
func apply(o *kernelOp, in ...*G.Node) *G.Node {
	n, err := G.ApplyOp(o, in...)
	if err != nil {
		panic(fmt.Errorf("build %s: %w", o.name, err))
	}
	return n
}

// both wraps the float32 and float64 instantiations of a generic kernel.
func both(f32 func([]float32, [][]float32), f64 func([]float64, [][]float64)) (func([]float32, [][]float32) error, func([]float64, [][]float64) error) {
	return func(o []float32, in [][]float32) error { f32(o, in); return nil },
		func(o []float64, in [][]float64) error { f64(o, in); return nil }
}

// ---- embedding: x = wte[ids] + wpe[pos] ----

// tokens holds the per-run integer inputs of a graph (token ids, positions,
// scored targets). Ops keep a pointer to it; the caller fills it before each run.
type tokens struct {
	ids, pos, tgt []int // tgt[n] < 0: position n is not scored
	argmax        []int // the head's argmax at each scored position (Generate reads it)
}

func embedding(tok *tokens, wte, wpe *G.Node) *G.Node {
	d := wte.Shape()[1]
	n := len(tok.ids)
	o := &kernelOp{name: fmt.Sprintf("Embedding(%p)", tok), inDims: []int{2, 2}, shape: tensor.Shape{n, d}, diffWRT: []bool{true, true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { embedForward(out, in[0], in[1], tok.ids, tok.pos, d) },
		func(out []float64, in [][]float64) { embedForward(out, in[0], in[1], tok.ids, tok.pos, d) })
	o.back = func(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
		return G.Nodes{embeddingGrad(tok.ids, "ids", in[0].Shape(), g, tok), embeddingGrad(tok.pos, "pos", in[1].Shape(), g, tok)}, nil
	}
	return apply(o, wte, wpe)
}

// embeddingGrad scatter-adds the rows of g into a table of the given shape.
func embeddingGrad(idx []int, what string, table tensor.Shape, g *G.Node, tok *tokens) *G.Node {
	d := table[1]
	o := &kernelOp{name: fmt.Sprintf("EmbeddingGrad(%s,%p)", what, tok), inDims: []int{2}, shape: table.Clone()}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { embedBackward(out, in[0], idx, d) },
		func(out []float64, in [][]float64) { embedBackward(out, in[0], idx, d) })
	return apply(o, g)
}

// ---- layer norm: normalize(x)·w + b over the last axis ----

func normalize(x, w, b *G.Node, eps float64) *G.Node {
	n, d := x.Shape()[0], x.Shape()[1]
	// Row statistics, written by the forward kernel and read by the backward
	// ones, which the tape always runs after it on the same x.
	st := make([]float64, 2*n)
	o := &kernelOp{name: fmt.Sprintf("LayerNorm(%g,%p)", eps, &st[0]), inDims: []int{2, 1, 1}, shape: x.Shape().Clone(), diffWRT: []bool{true, true, true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { layerNormForward(out, in[0], in[1], in[2], d, eps, st) },
		func(out []float64, in [][]float64) { layerNormForward(out, in[0], in[1], in[2], d, eps, st) })
	o.back = func(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
		x, w := in[0], in[1]
		dx := &kernelOp{name: fmt.Sprintf("LayerNormGradX(%p)", &st[0]), inDims: []int{2, 1, 2}, shape: x.Shape().Clone()}
		dx.f32, dx.f64 = both(
			func(out []float32, in [][]float32) { layerNormBackwardX(out, in[0], in[1], in[2], d, st) },
			func(out []float64, in [][]float64) { layerNormBackwardX(out, in[0], in[1], in[2], d, st) })
		dw := &kernelOp{name: fmt.Sprintf("LayerNormGradW(%p)", &st[0]), inDims: []int{2, 2}, shape: tensor.Shape{d}}
		dw.f32, dw.f64 = both(
			func(out []float32, in [][]float32) { layerNormBackwardW(out, nil, in[0], in[1], d, st) },
			func(out []float64, in [][]float64) { layerNormBackwardW(out, nil, in[0], in[1], d, st) })
		return G.Nodes{apply(dx, x, w, g), apply(dw, x, g), colSumNode(g)}, nil
	}
	return apply(o, x, w, b)
}

// colSumNode sums a matrix over its rows (the gradient of a broadcast bias).
func colSumNode(g *G.Node) *G.Node {
	m := g.Shape()[1]
	o := &kernelOp{name: "ColSum", inDims: []int{2}, shape: tensor.Shape{m}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { colSum(out, in[0], m) },
		func(out []float64, in [][]float64) { colSum(out, in[0], m) })
	return apply(o, g)
}

// ---- linear (GPT-2's Conv1D): y = x·W + b ----

func linear(x, w, b *G.Node) *G.Node {
	n, k, m := x.Shape()[0], w.Shape()[0], w.Shape()[1]
	o := &kernelOp{name: "Linear", inDims: []int{2, 2, 1}, shape: tensor.Shape{n, m}, diffWRT: []bool{true, true, true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { linearForward(out, in[0], in[1], in[2], n, k, m) },
		func(out []float64, in [][]float64) { linearForward(out, in[0], in[1], in[2], n, k, m) })
	o.back = func(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
		x, w := in[0], in[1]
		return G.Nodes{matmul(g, w, false, true), matmul(x, g, true, false), colSumNode(g)}, nil
	}
	return apply(o, x, w, b)
}

// matmul is op(a)·op(b) with op(X) = Xᵀ when tX.
func matmul(a, b *G.Node, tA, tB bool) *G.Node {
	as, bs := a.Shape(), b.Shape()
	m, k := as[0], as[1]
	if tA {
		m, k = k, m
	}
	n := bs[1]
	if tB {
		n = bs[0]
	}
	o := &kernelOp{name: fmt.Sprintf("MatMul(%t,%t)", tA, tB), inDims: []int{2, 2}, shape: tensor.Shape{m, n}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { gemm(tA, tB, m, n, k, 1, in[0], as[1], in[1], bs[1], 0, out, n) },
		func(out []float64, in [][]float64) { gemm(tA, tB, m, n, k, 1, in[0], as[1], in[1], bs[1], 0, out, n) })
	return apply(o, a, b)
}

// ---- residual add: x + y ----

// residualAdd is x + y into the op's own buffer (gorgonia's Add allocates a
// fresh result on every run); the gradient passes to both inputs unchanged.
func residualAdd(x, y *G.Node) *G.Node {
	o := &kernelOp{name: "ResidualAdd", inDims: []int{2, 2}, shape: x.Shape().Clone(), diffWRT: []bool{true, true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { addInto(out, in[0], in[1]) },
		func(out []float64, in [][]float64) { addInto(out, in[0], in[1]) })
	o.back = func(_ G.Nodes, _, g *G.Node) (G.Nodes, error) { return G.Nodes{g, g}, nil }
	return apply(o, x, y)
}

// ---- gelu_new ----

func gelu(x *G.Node) *G.Node {
	o := &kernelOp{name: "GeluNew", inDims: []int{2}, shape: x.Shape().Clone(), diffWRT: []bool{true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { geluForward(out, in[0]) },
		func(out []float64, in [][]float64) { geluForward(out, in[0]) })
	o.back = func(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
		d := &kernelOp{name: "GeluNewGrad", inDims: []int{2, 2}, shape: x.Shape().Clone()}
		d.f32, d.f64 = both(
			func(out []float32, in [][]float32) { geluBackward(out, in[0], in[1]) },
			func(out []float64, in [][]float64) { geluBackward(out, in[0], in[1]) })
		return G.Nodes{apply(d, in[0], g)}, nil
	}
	return apply(o, x)
}

// ---- causal self-attention: [B·T, 3D] (q|k|v) → [B·T, D] ----

func causalSelfAttention(qkv *G.Node, bsz, t, nHead int) *G.Node {
	d := qkv.Shape()[1] / 3
	o := &kernelOp{name: fmt.Sprintf("CausalAttention(B=%d,T=%d,H=%d)", bsz, t, nHead), inDims: []int{2}, shape: tensor.Shape{bsz * t, d}, diffWRT: []bool{true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { attentionForward(out, in[0], bsz, t, nHead, d) },
		func(out []float64, in [][]float64) { attentionForward(out, in[0], bsz, t, nHead, d) })
	o.back = func(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
		b := &kernelOp{name: fmt.Sprintf("CausalAttentionGrad(B=%d,T=%d,H=%d)", bsz, t, nHead), inDims: []int{2, 2}, shape: in[0].Shape().Clone()}
		b.f32, b.f64 = both(
			func(out []float32, in [][]float32) { attentionBackward(out, in[0], in[1], bsz, t, nHead, d) },
			func(out []float64, in [][]float64) { attentionBackward(out, in[0], in[1], bsz, t, nHead, d) })
		return G.Nodes{apply(b, in[0], g)}, nil
	}
	return apply(o, qkv)
}

// ---- tied head: log p(tgt[n] | h[n]) = (h·wteᵀ)[tgt] − logsumexp(h·wteᵀ) ----

func targetLogp(tok *tokens, h, wte *G.Node) *G.Node {
	n, d := h.Shape()[0], h.Shape()[1]
	v := wte.Shape()[0]
	cache := &headCache{} // logits from the forward kernel for the backward one
	o := &kernelOp{name: fmt.Sprintf("TargetLogp(%p)", tok), inDims: []int{2, 2}, shape: tensor.Shape{n}, diffWRT: []bool{true, true}}
	o.f32, o.f64 = both(
		func(out []float32, in [][]float32) { headForward(out, in[0], in[1], tok.tgt, v, d, tok.argmax, cache) },
		func(out []float64, in [][]float64) { headForward(out, in[0], in[1], tok.tgt, v, d, tok.argmax, cache) })
	o.back = func(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
		h, wte := in[0], in[1]
		dl := &kernelOp{name: fmt.Sprintf("TargetLogpGrad(%p)", tok), inDims: []int{2, 2, 1}, shape: tensor.Shape{n, v}}
		dl.f32, dl.f64 = both(
			func(out []float32, in [][]float32) { headBackward(out, in[2], tok.tgt, v, cache) },
			func(out []float64, in [][]float64) { headBackward(out, in[2], tok.tgt, v, cache) })
		dlogits := apply(dl, h, wte, g)
		dh := &kernelOp{name: fmt.Sprintf("TargetLogpGradH(%p)", tok), inDims: []int{2, 2}, shape: tensor.Shape{n, d}}
		dh.f32, dh.f64 = both(
			func(out []float32, in [][]float32) { headBackwardH(out, in[0], in[1], tok.tgt, v, d) },
			func(out []float64, in [][]float64) { headBackwardH(out, in[0], in[1], tok.tgt, v, d) })
		dw := &kernelOp{name: fmt.Sprintf("TargetLogpGradW(%p)", tok), inDims: []int{2, 2}, shape: tensor.Shape{v, d}}
		dw.f32, dw.f64 = both(
			func(out []float32, in [][]float32) { headBackwardW(out, in[0], in[1], tok.tgt, v, d) },
			func(out []float64, in [][]float64) { headBackwardW(out, in[0], in[1], tok.tgt, v, d) })
		return G.Nodes{apply(dh, dlogits, wte), apply(dw, dlogits, h)}, nil
	}
	return apply(o, h, wte)
}

// ---- the loss hook: calls the caller's loss function inside the tape ----

// lossHook carries the caller's loss function into the graph and its result out.
type lossHook struct {
	fn    func(logp []float64) (loss float64, dlogp []float64, err error)
	dlogp []float64
}

// lossNode is a scalar node whose value is hook.fn(logp); its gradient with
// respect to logp is the dlogp the loss function returned.
func lossNode(hook *lossHook, logp *G.Node) *G.Node {
	n := logp.Shape()[0]
	o := &kernelOp{name: fmt.Sprintf("Loss(%p)", hook), inDims: []int{1}, shape: tensor.Shape{}, diffWRT: []bool{true}}
	o.f32 = func(out []float32, in [][]float32) error {
		lp := make([]float64, len(in[0]))
		for i, v := range in[0] {
			lp[i] = float64(v)
		}
		l, err := o.callHook(hook, lp, n)
		out[0] = float32(l)
		return err
	}
	o.f64 = func(out []float64, in [][]float64) error {
		l, err := o.callHook(hook, in[0], n)
		out[0] = l
		return err
	}
	o.back = func(_ G.Nodes, out, g *G.Node) (G.Nodes, error) {
		// The loss node's output is an input only to order this op after the
		// hook has run; its value is not used.
		b := &kernelOp{name: fmt.Sprintf("LossGrad(%p)", hook), inDims: []int{0, 0}, shape: tensor.Shape{n}}
		b.f32 = func(o []float32, in [][]float32) error {
			for i, d := range hook.dlogp {
				o[i] = in[1][0] * float32(d)
			}
			return nil
		}
		b.f64 = func(o []float64, in [][]float64) error {
			for i, d := range hook.dlogp {
				o[i] = in[1][0] * d
			}
			return nil
		}
		return G.Nodes{apply(b, out, g)}, nil
	}
	return apply(o, logp)
}

func (o *kernelOp) callHook(hook *lossHook, lp []float64, n int) (float64, error) {
	l, d, err := hook.fn(lp)
	if err != nil {
		return 0, err
	}
	if len(d) != n {
		return 0, fmt.Errorf("loss gradient has %d entries, want %d", len(d), n)
	}
	hook.dlogp = d
	return l, nil
}

// sink copies a node's value into dst when the tape reaches it; graph outputs
// are read this way because the tape machine may reuse a finished node's
// memory for later nodes.
func sink(name string, x *G.Node, dst func(v any)) *G.Node {
	o := &kernelOp{name: name, inDims: []int{len(x.Shape())}, shape: tensor.Shape{}}
	o.f32 = func(_ []float32, in [][]float32) error { dst(in[0]); return nil }
	o.f64 = func(_ []float64, in [][]float64) error { dst(in[0]); return nil }
	return apply(o, x)
}
