package gpt_test

import (
	"fmt"
	"math"

	"github.com/dpopflow/dpopflow/train/gpt"
)

// Training is ForwardBackward with a loss on the per-token completion
// log-probs, then an update of the Params in place.
func Example() {
	m, err := gpt.New(gpt.DefaultConfig(258), 1) // byte-level vocab
	if err != nil {
		panic(err)
	}
	seqs := []gpt.Sequence{{Prompt: []int32{'2'}, Completion: []int32{'+', '2', '=', '4', 256}}}

	// One SFT step: mean negative log-likelihood, plain SGD.
	nll := func(logps [][]float32) (float64, [][]float32, error) {
		n := float32(len(logps[0]))
		var loss float64
		d := [][]float32{make([]float32, len(logps[0]))}
		for j, lp := range logps[0] {
			loss -= float64(lp / n)
			d[0][j] = -1 / n
		}
		return loss, d, nil
	}
	before, _, _ := m.ForwardBackward(seqs, nll)
	for _, p := range m.Params() {
		for i := range p.Data {
			p.Data[i] -= 0.1 * p.Grad[i]
		}
	}
	m.ZeroGrad()
	after, _, _ := m.ForwardBackward(seqs, nll)
	fmt.Printf("initial loss ≈ ln 258: %v\n", math.Abs(before-math.Log(258)) < 0.1)
	fmt.Printf("one step lowers it: %v\n", after < before)
	// Output:
	// initial loss ≈ ln 258: true
	// one step lowers it: true
}
