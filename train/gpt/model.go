package gpt

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"

	_ "go4.org/unsafe/assume-no-moving-gc" // gorgonia panics at start on Go ≥ 1.21 without it
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Model is a GPT-2 language model. Its methods are safe for concurrent use
// (runs are serialised), but Param buffers are shared: don't update weights
// while another goroutine runs the model.
type Model struct {
	cfg  Config
	wte  *Param // [V, D] token embedding, also the output head (tied)
	wpe  *Param // [P, D] learned positions
	h    []*block
	lnF  *layerNorm
	list []*Param // every parameter, in checkpoint order

	dtype tensor.Dtype // Float32, or Float64 in gradient checks

	mu     sync.Mutex
	graphs map[graphKey]*graph
	clock  int
}

// ---- the blocks, one type each (nanoGPT's model.py, in gorgonia) ----

type layerNorm struct {
	w, b *Param
	eps  float64
}

func (l *layerNorm) forward(gb *builder, x *G.Node) *G.Node {
	return normalize(x, gb.node(l.w), gb.node(l.b), l.eps)
}

// conv1D is GPT-2's linear layer: y = x·W + b with W stored [in, out].
type conv1D struct{ w, b *Param }

func (c *conv1D) forward(gb *builder, x *G.Node) *G.Node {
	return linear(x, gb.node(c.w), gb.node(c.b))
}

type selfAttention struct {
	cAttn, cProj *conv1D
	nHead        int
}

func (a *selfAttention) forward(gb *builder, x *G.Node) *G.Node {
	qkv := a.cAttn.forward(gb, x) // [N, 3D]: q | k | v, heads split along D
	y := causalSelfAttention(qkv, gb.bsz, gb.t, a.nHead)
	return a.cProj.forward(gb, y)
}

type mlp struct{ cFc, cProj *conv1D }

func (m *mlp) forward(gb *builder, x *G.Node) *G.Node {
	return m.cProj.forward(gb, gelu(m.cFc.forward(gb, x)))
}

type block struct {
	ln1  *layerNorm
	attn *selfAttention
	ln2  *layerNorm
	mlp  *mlp
}

func (b *block) forward(gb *builder, x *G.Node) *G.Node {
	x = gb.add(x, b.attn.forward(gb, b.ln1.forward(gb, x)))
	x = gb.add(x, b.mlp.forward(gb, b.ln2.forward(gb, x)))
	return x
}

// forward maps the batch in tok to per-position log-probs of the target tokens.
func (m *Model) forward(gb *builder, tok *tokens) *G.Node {
	wte := gb.node(m.wte)
	x := embedding(tok, wte, gb.node(m.wpe))
	for _, b := range m.h {
		x = b.forward(gb, x)
	}
	x = m.lnF.forward(gb, x)
	return targetLogp(tok, x, wte) // lm_head tied to wte
}

// ---- construction ----

// New returns a model with GPT-2's initialisation: weights N(0, 0.02), the
// residual projections (c_proj) N(0, 0.02/√(2·n_layer)), LayerNorm weight 1
// and bias 0, other biases 0. The same seed gives the same weights.
func New(cfg Config, seed int64) (*Model, error) {
	m, err := newZero(cfg)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(seed))
	projStd := 0.02 / math.Sqrt(2*float64(cfg.NLayer))
	normal := func(p *Param, std float64) {
		for i := range p.Data {
			p.Data[i] = float32(rng.NormFloat64() * std)
		}
	}
	normal(m.wte, 0.02)
	normal(m.wpe, 0.02)
	for _, b := range m.h {
		normal(b.attn.cAttn.w, 0.02)
		normal(b.attn.cProj.w, projStd)
		normal(b.mlp.cFc.w, 0.02)
		normal(b.mlp.cProj.w, projStd)
	}
	return m, nil
}

func (c Config) validate() error {
	switch {
	case c.VocabSize < 1, c.NPositions < 1, c.NEmbd < 1, c.NLayer < 1, c.NHead < 1:
		return fmt.Errorf("gpt: invalid config %+v: sizes must be positive", c)
	case c.NEmbd%c.NHead != 0:
		return fmt.Errorf("gpt: invalid config: n_embd %d is not a multiple of n_head %d", c.NEmbd, c.NHead)
	case !(c.LayerNormEpsilon > 0):
		return fmt.Errorf("gpt: invalid config: layer_norm_epsilon %g must be positive", c.LayerNormEpsilon)
	}
	return nil
}

// newZero allocates every parameter (zeros; LayerNorm weights 1).
func newZero(cfg Config) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, dtype: tensor.Float32}
	d := cfg.NEmbd
	param := func(name string, shape ...int) *Param {
		n := 1
		for _, s := range shape {
			n *= s
		}
		p := &Param{Name: name, Shape: shape, Data: make([]float32, n), Grad: make([]float32, n)}
		m.list = append(m.list, p)
		return p
	}
	ln := func(prefix string) *layerNorm {
		l := &layerNorm{w: param(prefix+".weight", d), b: param(prefix+".bias", d), eps: cfg.LayerNormEpsilon}
		for i := range l.w.Data {
			l.w.Data[i] = 1
		}
		return l
	}
	lin := func(prefix string, in, out int) *conv1D {
		return &conv1D{w: param(prefix+".weight", in, out), b: param(prefix+".bias", out)}
	}
	m.wte = param("wte.weight", cfg.VocabSize, d)
	m.wpe = param("wpe.weight", cfg.NPositions, d)
	for i := 0; i < cfg.NLayer; i++ {
		p := fmt.Sprintf("h.%d.", i)
		m.h = append(m.h, &block{
			ln1:  ln(p + "ln_1"),
			attn: &selfAttention{cAttn: lin(p+"attn.c_attn", d, 3*d), cProj: lin(p+"attn.c_proj", d, d), nHead: cfg.NHead},
			ln2:  ln(p + "ln_2"),
			mlp:  &mlp{cFc: lin(p+"mlp.c_fc", d, 4*d), cProj: lin(p+"mlp.c_proj", 4*d, d)},
		})
	}
	m.lnF = ln("ln_f")
	return m, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Params returns the weights in a stable order (GPT-2's: wte, wpe, each block's
// ln_1, c_attn, c_proj, ln_2, c_fc, c_proj, then ln_f). Data and Grad are the
// live buffers: update them in place (don't replace the slices).
func (m *Model) Params() []*Param { return m.list }

// ZeroGrad clears every gradient buffer.
func (m *Model) ZeroGrad() {
	for _, p := range m.list {
		clear(p.Grad)
		clear(p.grad64)
	}
}

// Clone returns a model with a deep copy of the weights (gradients zero),
// e.g. to keep a frozen reference model.
func (m *Model) Clone() *Model {
	c, err := newZero(m.cfg)
	if err != nil {
		panic(err) // m's config was validated when m was made
	}
	for i, p := range m.list {
		copy(c.list[i].Data, p.Data)
	}
	if m.dtype == tensor.Float64 {
		c.setFloat64()
	}
	return c
}

// setFloat64 switches the model to float64 (gradient checks): the weights are
// copied into float64 shadows, which from then on are the weights used.
func (m *Model) setFloat64() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dtype = tensor.Float64
	m.graphs = nil
	for _, p := range m.list {
		p.data64 = make([]float64, len(p.Data))
		p.grad64 = make([]float64, len(p.Data))
		for i, v := range p.Data {
			p.data64[i] = float64(v)
		}
	}
}

// ---- graphs: one per padded batch shape ----

type graphKey struct {
	bsz, t int
	train  bool
}

type graph struct {
	key     graphKey
	vm      G.VM
	tok     *tokens
	hook    *lossHook
	logp    []float64 // forward-only graphs: filled by a sink
	bound   map[*Param]*G.Node
	backing map[*Param]any // the slice each weight node is bound to
	used    int
}

// builder carries what the blocks' forward methods need while a graph is built.
type builder struct {
	g      *G.ExprGraph
	dt     tensor.Dtype
	bsz, t int
	nodes  map[*Param]*G.Node
}

func (gb *builder) node(p *Param) *G.Node {
	if n, ok := gb.nodes[p]; ok {
		return n
	}
	n := G.NewTensor(gb.g, gb.dt, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name))
	gb.nodes[p] = n
	return n
}

func (gb *builder) add(a, b *G.Node) *G.Node { return residualAdd(a, b) }

// maxGraphs bounds the cache of graphs. A graph keeps its activations and
// gradients allocated (about 80 MB for 64 sequences of 128 tokens at d=32),
// and building one takes a few hundred milliseconds, so a training run should
// see few shapes: batch sizes are fixed or padded, lengths bucketed.
const maxGraphs = 12

// bucketT pads sequence lengths to a multiple of 16 so that a few graphs
// cover all lengths.
func (m *Model) bucketT(n int) int {
	t := (n + 15) / 16 * 16
	return min(t, m.cfg.NPositions)
}

func (m *Model) graphFor(key graphKey) (*graph, error) {
	m.clock++
	if gr, ok := m.graphs[key]; ok {
		gr.used = m.clock
		return gr, nil
	}
	if len(m.graphs) >= maxGraphs {
		var oldest *graph
		for _, gr := range m.graphs {
			if oldest == nil || gr.used < oldest.used {
				oldest = gr
			}
		}
		oldest.vm.Close()
		delete(m.graphs, oldest.key)
	}
	gr, err := m.buildGraph(key)
	if err != nil {
		return nil, fmt.Errorf("gpt: build graph for batch %d×%d: %w", key.bsz, key.t, err)
	}
	gr.used = m.clock
	if m.graphs == nil {
		m.graphs = map[graphKey]*graph{}
	}
	m.graphs[key] = gr
	return gr, nil
}

func (m *Model) buildGraph(key graphKey) (gr *graph, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok {
				e = fmt.Errorf("%v", r)
			}
			err = e
		}
	}()
	n := key.bsz * key.t
	gr = &graph{
		key:  key,
		tok:  &tokens{ids: make([]int, n), pos: make([]int, n), tgt: make([]int, n), argmax: make([]int, n)},
		hook: &lossHook{},
		logp: make([]float64, n),
	}
	gb := &builder{g: G.NewGraph(), dt: m.dtype, bsz: key.bsz, t: key.t, nodes: map[*Param]*G.Node{}}
	logp := m.forward(gb, gr.tok)
	if key.train {
		loss := lossNode(gr.hook, logp)
		wrt := make(G.Nodes, len(m.list))
		for i, p := range m.list {
			wrt[i] = gb.node(p)
		}
		grads, err := G.Grad(loss, wrt...)
		if err != nil {
			return nil, fmt.Errorf("differentiate: %w", err)
		}
		// Gradients are added into Param.Grad as soon as the tape computes
		// them, which is what makes repeated calls accumulate.
		for i, p := range m.list {
			sink("AccumulateGrad("+p.Name+")", grads[i], func(v any) {
				switch v := v.(type) {
				case []float32:
					axpy(1, v, p.Grad)
				case []float64:
					axpy(1, v, p.grad64)
				}
			})
		}
	} else {
		sink(fmt.Sprintf("Output(%p)", gr), logp, func(v any) {
			switch v := v.(type) {
			case []float32:
				for i, x := range v {
					gr.logp[i] = float64(x)
				}
			case []float64:
				copy(gr.logp, v)
			}
		})
	}
	gr.bound = gb.nodes
	gr.backing = map[*Param]any{}
	gr.vm = G.NewTapeMachine(gb.g)
	return gr, nil
}

// bindWeights (re)binds weight nodes whose backing slice changed (first run,
// or a caller replaced Param.Data).
func (m *Model) bindWeights(gr *graph) error {
	for p, n := range gr.bound {
		var data any = p.Data
		if m.dtype == tensor.Float64 {
			data = p.data64
		}
		if old, ok := gr.backing[p]; ok && sameSlice(old, data) {
			continue
		}
		if err := G.Let(n, tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(data))); err != nil {
			return fmt.Errorf("bind %s: %w", p.Name, err)
		}
		gr.backing[p] = data
	}
	return nil
}

func sameSlice(a, b any) bool {
	switch a := a.(type) {
	case []float32:
		b := b.([]float32)
		return len(a) == len(b) && &a[0] == &b[0]
	case []float64:
		b := b.([]float64)
		return len(a) == len(b) && &a[0] == &b[0]
	}
	return false
}

// ---- running batches ----

// inputLen is the number of positions a sequence occupies:
// prompt ++ completion[:len-1].
func inputLen(s Sequence) int {
	return len(s.Prompt) + max(len(s.Completion)-1, 0)
}

func (m *Model) checkSeq(i int, s Sequence) error {
	if len(s.Prompt) == 0 {
		return fmt.Errorf("gpt: sequence %d: empty prompt (at least one token must precede the completion)", i)
	}
	if n := inputLen(s); n > m.cfg.NPositions {
		return fmt.Errorf("gpt: sequence %d: %d input tokens exceed n_positions %d (truncate upstream)", i, n, m.cfg.NPositions)
	}
	for _, part := range [][]int32{s.Prompt, s.Completion} {
		for _, id := range part {
			if id < 0 || int(id) >= m.cfg.VocabSize {
				return fmt.Errorf("gpt: sequence %d: token id %d outside vocabulary [0,%d)", i, id, m.cfg.VocabSize)
			}
		}
	}
	return nil
}

// fill lays seqs out in tok, right-padded to t; padding comes after every real
// token, so causal attention keeps it from affecting them.
func fill(tok *tokens, seqs []Sequence, t int) {
	for i, s := range seqs {
		for p := 0; p < t; p++ {
			n := i*t + p
			tok.pos[n] = p
			tok.tgt[n] = -1
			switch {
			case p < len(s.Prompt):
				tok.ids[n] = int(s.Prompt[p])
			case p < inputLen(s):
				tok.ids[n] = int(s.Completion[p-len(s.Prompt)])
			default:
				tok.ids[n] = 0
			}
		}
		for j, c := range s.Completion {
			tok.tgt[i*t+len(s.Prompt)-1+j] = int(c)
		}
	}
}

// run executes one batch. With lossFn nil it is forward only; otherwise the
// gradients of lossFn's result accumulate into the parameters' gradients.
// Callers hold m.mu.
func (m *Model) run(seqs []Sequence, lossFn func([][]float64) (float64, [][]float64, error)) (float64, [][]float64, error) {
	maxLen := 1
	for _, s := range seqs {
		maxLen = max(maxLen, inputLen(s))
	}
	t := m.bucketT(maxLen)
	gr, err := m.graphFor(graphKey{bsz: len(seqs), t: t, train: lossFn != nil})
	if err != nil {
		return 0, nil, err
	}
	if err := m.bindWeights(gr); err != nil {
		return 0, nil, err
	}
	fill(gr.tok, seqs, t)
	unflatten := func(flat []float64) [][]float64 {
		out := make([][]float64, len(seqs))
		for i, s := range seqs {
			off := i*t + len(s.Prompt) - 1
			out[i] = append([]float64(nil), flat[off:off+len(s.Completion)]...)
		}
		return out
	}
	var logps [][]float64
	var loss float64
	var lossErr error // gorgonia flattens errors into text: keep the caller's own
	if lossFn != nil {
		// The loss op calls this in the middle of the tape, between the
		// forward and the backward ops.
		gr.hook.fn = func(flat []float64) (float64, []float64, error) {
			logps = unflatten(flat)
			l, d, err := lossFn(logps)
			if err == nil {
				err = checkGradShape(d, seqs)
			}
			if err != nil {
				lossErr = err
				return 0, nil, err
			}
			dflat := make([]float64, len(flat))
			for i, s := range seqs {
				copy(dflat[i*t+len(s.Prompt)-1:], d[i])
			}
			loss = l
			return l, dflat, nil
		}
		defer func() { gr.hook.fn = nil }()
	}
	gr.vm.Reset()
	if err := gr.vm.RunAll(); err != nil {
		if lossErr != nil {
			return 0, nil, fmt.Errorf("gpt: loss function: %w", lossErr)
		}
		return 0, nil, fmt.Errorf("gpt: run batch %d×%d: %w", len(seqs), t, err)
	}
	if lossFn == nil {
		logps = unflatten(gr.logp)
	}
	return loss, logps, nil
}

func checkGradShape(d [][]float64, seqs []Sequence) error {
	if len(d) != len(seqs) {
		return fmt.Errorf("loss gradient has %d sequences, want %d", len(d), len(seqs))
	}
	for i, s := range seqs {
		if len(d[i]) != len(s.Completion) {
			return fmt.Errorf("loss gradient for sequence %d has %d tokens, want %d", i, len(d[i]), len(s.Completion))
		}
	}
	return nil
}

// maxScoreBatch is how many sequences CompletionLogps runs per graph.
const maxScoreBatch = 32

// CompletionLogps returns, for each sequence, the log-probability of each
// completion token given the prompt and the completion tokens before it
// (result[i] has len(seqs[i].Completion) entries). Any number of sequences of
// any lengths may be given: they are grouped by length and padded internally,
// and neither padding nor batch composition changes a result beyond float32
// rounding. Each prompt needs at least one token, and each sequence's input
// (len(prompt)+len(completion)−1 tokens) must fit in n_positions.
func (m *Model) CompletionLogps(seqs []Sequence) ([][]float32, error) {
	for i, s := range seqs {
		if err := m.checkSeq(i, s); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Sort by length so batches waste little on padding.
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	sortByLen(order, seqs)
	out := make([][]float32, len(seqs))
	for lo := 0; lo < len(order); lo += maxScoreBatch {
		idx := order[lo:min(lo+maxScoreBatch, len(order))]
		// Pad the batch to a power of two with one-token dummies (nothing
		// scored) so a few graph shapes serve every batch size.
		padded := 1
		for padded < len(idx) {
			padded *= 2
		}
		batch := make([]Sequence, padded)
		for j := range batch {
			batch[j] = Sequence{Prompt: []int32{0}}
		}
		for j, i := range idx {
			batch[j] = seqs[i]
		}
		_, lp, err := m.run(batch, nil)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = toFloat32(lp[j])
		}
	}
	return out, nil
}

func sortByLen(order []int, seqs []Sequence) {
	// Insertion sort keeps equal lengths in input order (stable) and the
	// package free of a sort import for one call; batches are small.
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && inputLen(seqs[order[j]]) < inputLen(seqs[order[j-1]]); j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
}

func toFloat32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// ForwardBackward computes the per-token completion log-probs of seqs (one
// batch, as CompletionLogps), passes them to lossFn, which returns the loss
// and dLoss/dlogp for every token (same shape), and backpropagates: the
// gradients ACCUMULATE into Param.Grad, so calling it on several micro-batches
// before an optimizer step accumulates gradients. Call ZeroGrad between steps.
// seqs is one batch (the loss may couple sequences, e.g. chosen/rejected
// pairs), so it must not be empty; the same length rules as CompletionLogps
// apply. An error from lossFn is returned wrapped, and then no gradient is
// added.
func (m *Model) ForwardBackward(seqs []Sequence, lossFn func(logps [][]float32) (loss float64, dlogps [][]float32, err error)) (loss float64, logps [][]float32, err error) {
	if lossFn == nil {
		return 0, nil, errors.New("gpt: ForwardBackward needs a loss function")
	}
	// logps is the float32 copy handed to lossFn: exactly what the loss saw.
	loss, _, err = m.forwardBackward64(seqs, func(lp [][]float64) (float64, [][]float64, error) {
		logps = make([][]float32, len(lp))
		for i := range lp {
			logps[i] = toFloat32(lp[i])
		}
		l, d, err := lossFn(logps)
		if err != nil {
			return 0, nil, err
		}
		d64 := make([][]float64, len(d))
		for i := range d {
			d64[i] = make([]float64, len(d[i]))
			for j, v := range d[i] {
				d64[i][j] = float64(v)
			}
		}
		return l, d64, nil
	})
	if err != nil {
		return 0, nil, err
	}
	return loss, logps, nil
}

// forwardBackward64 is ForwardBackward with float64 log-probs, used directly by
// the gradient checks.
func (m *Model) forwardBackward64(seqs []Sequence, lossFn func([][]float64) (float64, [][]float64, error)) (float64, [][]float64, error) {
	if len(seqs) == 0 {
		return 0, nil, errors.New("gpt: ForwardBackward on an empty batch")
	}
	for i, s := range seqs {
		if err := m.checkSeq(i, s); err != nil {
			return 0, nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.run(seqs, lossFn)
}

// Generate greedily decodes after prompt: it appends the most likely next
// token up to maxNew times, stopping after eos (included) or when the context
// reaches n_positions. It returns only the new tokens.
func (m *Model) Generate(prompt []int32, maxNew int, eos int32) ([]int32, error) {
	if err := m.checkSeq(0, Sequence{Prompt: prompt}); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx := append([]int32(nil), prompt...)
	var out []int32
	for len(out) < maxNew && len(ctx) <= m.cfg.NPositions {
		// Score a dummy completion token at the last position: the head
		// records the argmax of the logits there.
		seq := Sequence{Prompt: ctx, Completion: []int32{0}}
		gr, err := m.generateStep(seq)
		if err != nil {
			return out, err
		}
		next := int32(gr.tok.argmax[len(ctx)-1])
		out = append(out, next)
		ctx = append(ctx, next)
		if next == eos {
			break
		}
	}
	return out, nil
}

func (m *Model) generateStep(seq Sequence) (*graph, error) {
	if _, _, err := m.run([]Sequence{seq}, nil); err != nil {
		return nil, err
	}
	return m.graphs[graphKey{bsz: 1, t: m.bucketT(inputLen(seq)), train: false}], nil
}
