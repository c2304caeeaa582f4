package train

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	_ "go4.org/unsafe/assume-no-moving-gc" // gorgonia panics at start on Go ≥ 1.21 without it
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Loss names, as TRL spells them (its loss_type / trainer choice).
const (
	LossSFT  = "sft"  // mean negative log-likelihood of the chosen completion's tokens
	LossDPO  = "dpo"  // Rafailov et al.: DPOP with λ = 0
	LossDPOP = "dpop" // Pal et al. (Smaug), paper v2 Eq. 3
	LossIPO  = "ipo"  // Azar et al., on length-normalised log-probs
)

// Logps are one batch's summed completion log-probs: policy (Chosen, Rejected)
// and reference (RefChosen, RefRejected), one entry per pair, with the number of
// completion tokens each sum covers. SFT reads only Chosen and ChosenLen.
type Logps struct {
	Chosen, Rejected       []float64
	RefChosen, RefRejected []float64
	ChosenLen, RejectedLen []int
}

// ---- Scalar references -------------------------------------------------------
//
// These are the formulas written out once more, per pair and in plain float64,
// so the graph version that training runs can be checked against something
// that shares none of its code.

// logSigmoid is log σ(x) = −softplus(−x), written so that neither branch
// overflows: for large |x| one of the two terms is exactly 0 or x.
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

// sigmoid without overflow for either sign.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// DPOPLoss is one pair's DPOP loss (DPO when lambda = 0) and its derivatives
// with respect to the policy's summed log-probs lc (chosen) and lr (rejected):
//
//	z = β·[(lc − rc) − (lr − rr) − λ·max(0, rc − lc)],  L = −log σ(z).
//
// At the kink lc = rc the derivative of max(0, x) is taken as 1 (PyTorch's
// clamp(min=0) convention), so at step 0 with precomputed reference log-probs
// the penalty already pushes lc up.
func DPOPLoss(lc, lr, rc, rr, beta, lambda float64) (loss, dlc, dlr float64) {
	pen := math.Max(0, rc-lc)
	z := beta * ((lc - rc) - (lr - rr) - lambda*pen)
	loss = -logSigmoid(z)
	dz := -sigmoid(-z) // dL/dz
	dpen := 0.0        // d max(0, rc−lc) / d lc
	if rc-lc >= 0 {
		dpen = -1
	}
	dlc = dz * beta * (1 - lambda*dpen)
	dlr = dz * beta * -1
	return loss, dlc, dlr
}

// IPOLoss is one pair's IPO loss on length-normalised log-probs (nc, nr tokens):
//
//	h = (lc/nc − rc/nc) − (lr/nr − rr/nr) − 1/(2β),  L = h².
func IPOLoss(lc, lr, rc, rr float64, nc, nr int, beta float64) (loss, dlc, dlr float64) {
	h := (lc-rc)/float64(nc) - (lr-rr)/float64(nr) - 1/(2*beta)
	return h * h, 2 * h / float64(nc), -2 * h / float64(nr)
}

// ReferenceLoss is the batch loss the trainer optimises, computed from the
// scalar formulas: the mean over pairs of DPOPLoss/IPOLoss, or for SFT the mean
// negative log-likelihood over all completion tokens of the batch. dlc and dlr
// are the derivatives of the batch loss (dlr is nil for SFT).
func ReferenceLoss(kind string, beta, lambda float64, b Logps) (loss float64, dlc, dlr []float64, err error) {
	n := len(b.Chosen)
	dlc = make([]float64, n)
	switch kind {
	case LossSFT:
		tokens := 0
		for _, k := range b.ChosenLen {
			tokens += k
		}
		for i := range b.Chosen {
			loss -= b.Chosen[i] / float64(tokens)
			dlc[i] = -1 / float64(tokens)
		}
		return loss, dlc, nil, nil
	case LossDPO, LossDPOP, LossIPO:
		if kind == LossDPO {
			lambda = 0
		}
		dlr = make([]float64, n)
		for i := range b.Chosen {
			var l, gc, gr float64
			if kind == LossIPO {
				l, gc, gr = IPOLoss(b.Chosen[i], b.Rejected[i], b.RefChosen[i], b.RefRejected[i], b.ChosenLen[i], b.RejectedLen[i], beta)
			} else {
				l, gc, gr = DPOPLoss(b.Chosen[i], b.Rejected[i], b.RefChosen[i], b.RefRejected[i], beta, lambda)
			}
			loss += l / float64(n)
			dlc[i], dlr[i] = gc/float64(n), gr/float64(n)
		}
		return loss, dlc, dlr, nil
	}
	return 0, nil, nil, fmt.Errorf("unknown loss %q (want sft, dpo, dpop or ipo)", kind)
}

// ---- Graph version -------------------------------------------------------------

// Objective is the batch loss as a gorgonia expression graph over the vectors
// lc, lr, rc, rr ([B]); gorgonia's symbolic differentiation gives dL/dlc and
// dL/dlr, which the trainer broadcasts to each completion token's log-prob.
// Graphs are built once per batch size and reused. Not safe for concurrent use.
type Objective struct {
	Kind   string
	Beta   float64
	Lambda float64 // ignored (taken as 0) for dpo

	graphs map[int]*lossGraph
}

// NewObjective checks the loss name and hyperparameters.
func NewObjective(kind string, beta, lambda float64) (*Objective, error) {
	switch kind {
	case LossSFT, LossDPO, LossDPOP, LossIPO:
	default:
		return nil, fmt.Errorf("unknown loss %q (want sft, dpo, dpop or ipo)", kind)
	}
	if kind != LossSFT && !(beta > 0) {
		return nil, fmt.Errorf("loss %s: beta must be > 0, got %v", kind, beta)
	}
	if kind == LossDPOP && lambda < 0 {
		return nil, fmt.Errorf("loss dpop: lambda must be >= 0, got %v", lambda)
	}
	if kind == LossDPO {
		lambda = 0
	}
	return &Objective{Kind: kind, Beta: beta, Lambda: lambda, graphs: map[int]*lossGraph{}}, nil
}

type lossGraph struct {
	g                  *G.ExprGraph
	lc, lr, rc, rr     *G.Node
	invNc, invNr, invN *G.Node // IPO's 1/|c|, 1/|r|; SFT's 1/(tokens in batch)
	loss               *G.Node
	dlc, dlr           *G.Node
	vm                 G.VM
}

// Compute returns the batch loss and its derivatives with respect to the
// policy's summed log-probs (dlr is nil for SFT).
func (o *Objective) Compute(b Logps) (loss float64, dlc, dlr []float64, err error) {
	n := len(b.Chosen)
	if n == 0 {
		return 0, nil, nil, fmt.Errorf("loss %s: empty batch", o.Kind)
	}
	if len(b.ChosenLen) != n {
		return 0, nil, nil, fmt.Errorf("loss %s: %d chosen sums but %d lengths", o.Kind, n, len(b.ChosenLen))
	}
	if o.Kind != LossSFT {
		for _, v := range [][]float64{b.Rejected, b.RefChosen, b.RefRejected} {
			if len(v) != n {
				return 0, nil, nil, fmt.Errorf("loss %s: batch vectors of unequal length (%d chosen, %d other)", o.Kind, n, len(v))
			}
		}
		if len(b.RejectedLen) != n {
			return 0, nil, nil, fmt.Errorf("loss %s: %d pairs but %d rejected lengths", o.Kind, n, len(b.RejectedLen))
		}
	}
	lg := o.graphs[n]
	if lg == nil {
		if lg, err = o.build(n); err != nil {
			return 0, nil, nil, fmt.Errorf("build %s loss graph: %w", o.Kind, err)
		}
		o.graphs[n] = lg
	}
	vec := func(v []float64) *tensor.Dense {
		return tensor.New(tensor.WithShape(n), tensor.WithBacking(append([]float64(nil), v...)))
	}
	inv := func(lens []int) *tensor.Dense {
		out := make([]float64, n)
		for i, k := range lens {
			if k <= 0 {
				out[i] = math.NaN() // an empty completion has no per-token mean; surfaces as a NaN loss
			} else {
				out[i] = 1 / float64(k)
			}
		}
		return tensor.New(tensor.WithShape(n), tensor.WithBacking(out))
	}
	var letErr error
	let := func(node *G.Node, v any) {
		if err := G.Let(node, v); err != nil && letErr == nil {
			letErr = fmt.Errorf("loss %s: set input %s: %w", o.Kind, node.Name(), err)
		}
	}
	let(lg.lc, vec(b.Chosen))
	if o.Kind == LossSFT {
		tokens := 0
		for _, k := range b.ChosenLen {
			tokens += k
		}
		let(lg.invN, 1/float64(tokens))
	} else {
		let(lg.lr, vec(b.Rejected))
		let(lg.rc, vec(b.RefChosen))
		let(lg.rr, vec(b.RefRejected))
		if o.Kind == LossIPO {
			let(lg.invNc, inv(b.ChosenLen))
			let(lg.invNr, inv(b.RejectedLen))
		}
	}
	if letErr != nil {
		return 0, nil, nil, letErr
	}
	lg.vm.Reset()
	if err := lg.vm.RunAll(); err != nil {
		return 0, nil, nil, fmt.Errorf("run %s loss graph: %w", o.Kind, err)
	}
	loss = lg.loss.Value().Data().(float64)
	dlc = append([]float64(nil), lg.dlc.Value().Data().([]float64)...)
	if lg.dlr != nil {
		dlr = append([]float64(nil), lg.dlr.Value().Data().([]float64)...)
	}
	return loss, dlc, dlr, nil
}

// build writes the formulas of DPOPLoss/IPOLoss/ReferenceLoss as a graph.
// Every gorgonia op used here is gradient-checked in loss_test.go.
func (o *Objective) build(n int) (lg *lossGraph, err error) {
	lg = &lossGraph{g: G.NewGraph()}
	g := lg.g
	newVec := func(name string) *G.Node { return G.NewVector(g, tensor.Float64, G.WithShape(n), G.WithName(name)) }
	// must panics on graph-construction errors, which are programming errors
	// (shapes and types here are fixed); the recover turns them into an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	must := func(x *G.Node, err error) *G.Node {
		if err != nil {
			panic(err)
		}
		return x
	}
	scalar := func(v float64) *G.Node { return G.NewConstant(v) }

	lg.lc = newVec("lc")
	var perPair *G.Node
	switch o.Kind {
	case LossSFT:
		lg.invN = G.NewScalar(g, tensor.Float64, G.WithName("inv_tokens"))
		// L = −Σ lc / tokens: every completion token weighs the same, as in
		// TRL's SFT (a mean over non-masked tokens), not every sequence.
		lg.loss = must(G.Mul(must(G.Neg(must(G.Sum(lg.lc)))), lg.invN))
	case LossDPO, LossDPOP:
		lg.lr, lg.rc, lg.rr = newVec("lr"), newVec("rc"), newVec("rr")
		logits := must(G.Sub(must(G.Sub(lg.lc, lg.rc)), must(G.Sub(lg.lr, lg.rr))))
		if o.Lambda != 0 {
			pen := must(hinge(must(G.Sub(lg.rc, lg.lc))))
			logits = must(G.Sub(logits, must(G.Mul(pen, scalar(o.Lambda)))))
		}
		z := must(G.Mul(logits, scalar(o.Beta)))
		// −log σ(z) = softplus(−z); gorgonia's Softplus is overflow-safe.
		perPair = must(G.Softplus(must(G.Neg(z))))
	case LossIPO:
		lg.lr, lg.rc, lg.rr = newVec("lr"), newVec("rc"), newVec("rr")
		lg.invNc, lg.invNr = newVec("inv_len_chosen"), newVec("inv_len_rejected")
		hc := must(G.HadamardProd(must(G.Sub(lg.lc, lg.rc)), lg.invNc))
		hr := must(G.HadamardProd(must(G.Sub(lg.lr, lg.rr)), lg.invNr))
		h := must(G.Sub(must(G.Sub(hc, hr)), scalar(1/(2*o.Beta))))
		perPair = must(G.HadamardProd(h, h))
	}
	if perPair != nil {
		lg.loss = must(G.Mean(perPair))
	}
	wrt := G.Nodes{lg.lc}
	if lg.lr != nil {
		wrt = append(wrt, lg.lr)
	}
	grads, err := G.Grad(lg.loss, wrt...)
	if err != nil {
		return nil, err
	}
	lg.dlc = grads[0]
	if lg.lr != nil {
		lg.dlr = grads[1]
	}
	lg.vm = G.NewTapeMachine(g)
	return lg, nil
}

// ---- max(0, x) with derivative 1 at 0 ------------------------------------------
//
// gorgonia's Rectify takes the derivative at 0 as 0. At step 0 of DPOP with
// precomputed reference log-probs every pair sits exactly at lc = rc, so the
// convention decides whether the penalty acts at all on the first step; the
// paper's code (PyTorch clamp(min=0)) takes 1. hingeOp is max(0, x) whose
// symbolic derivative multiplies the incoming gradient by stepOp(x) = [x ≥ 0].

func hinge(x *G.Node) (*G.Node, error) { return G.ApplyOp(hingeOp{}, x) }

type hingeOp struct{}

func (hingeOp) Arity() int { return 1 }
func (hingeOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (hingeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (hingeOp) Do(v ...G.Value) (G.Value, error) {
	return mapFloats(v[0], func(x float64) float64 {
		if x > 0 {
			return x
		}
		if x != x { // NaN stays NaN, so a broken batch is seen, not hidden
			return x
		}
		return 0
	})
}
func (hingeOp) ReturnsPtr() bool      { return false }
func (hingeOp) CallsExtern() bool     { return false }
func (hingeOp) OverwritesInput() int  { return -1 }
func (hingeOp) WriteHash(h hash.Hash) { fmt.Fprint(h, "dpopflow.hinge") }
func (o hingeOp) Hashcode() uint32    { return hashOp(o) }
func (hingeOp) String() string        { return "Hinge" }

func (hingeOp) DiffWRT(int) []bool { return []bool{true} }
func (hingeOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	step, err := G.ApplyOp(stepOp{}, in[0])
	if err != nil {
		return nil, err
	}
	d, err := G.HadamardProd(grad, step)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

// stepOp is [x ≥ 0] as 1 or 0: the derivative of hingeOp, 1 at the kink.
type stepOp struct{ hingeOp }

func (stepOp) Do(v ...G.Value) (G.Value, error) {
	return mapFloats(v[0], func(x float64) float64 {
		if x >= 0 {
			return 1
		}
		return 0
	})
}
func (stepOp) WriteHash(h hash.Hash) { fmt.Fprint(h, "dpopflow.step") }
func (o stepOp) Hashcode() uint32    { return hashOp(o) }
func (stepOp) String() string        { return "StepAtZeroIsOne" }
func (stepOp) DiffWRT(int) []bool    { return []bool{false} }
func (stepOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("StepAtZeroIsOne has no derivative")
}

func hashOp(o G.Op) uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// mapFloats applies f to a float64 or float32 tensor or scalar, returning a new value.
func mapFloats(v G.Value, f func(float64) float64) (G.Value, error) {
	switch x := v.(type) {
	case *tensor.Dense:
		switch d := x.Data().(type) {
		case []float64:
			out := make([]float64, len(d))
			for i, e := range d {
				out[i] = f(e)
			}
			return tensor.New(tensor.WithShape(x.Shape().Clone()...), tensor.WithBacking(out)), nil
		case []float32:
			out := make([]float32, len(d))
			for i, e := range d {
				out[i] = float32(f(float64(e)))
			}
			return tensor.New(tensor.WithShape(x.Shape().Clone()...), tensor.WithBacking(out)), nil
		}
	case *G.F64:
		return G.NewF64(f(float64(*x))), nil
	case *G.F32:
		return G.NewF32(float32(f(float64(*x)))), nil
	}
	return nil, fmt.Errorf("hinge/step: unsupported value %T", v)
}
