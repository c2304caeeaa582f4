package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

// refSums supplies the reference's summed log-probs over each example's kept
// completion tokens: read from the scored shards, or computed with the frozen
// reference model the first time a pair is seen and cached.
type refSums struct {
	model   *gpt.Model
	compute bool
	cache   map[*schemas.Row][2]float64
}

func (r *refSums) get(ex []Example) (rc, rr []float64, err error) {
	rc, rr = make([]float64, len(ex)), make([]float64, len(ex))
	if !r.compute {
		for i, e := range ex {
			rc[i], rr[i] = e.RefChosen, e.RefRejected
		}
		return rc, rr, nil
	}
	if r.model == nil {
		return nil, nil, errors.New("reference log-probs requested but no reference model (--ref)")
	}
	var missing []int
	var seqs []gpt.Sequence
	for i, e := range ex {
		if _, ok := r.cache[e.Row]; !ok {
			missing = append(missing, i)
			seqs = append(seqs, e.Chosen, e.Rejected)
		}
	}
	if len(seqs) > 0 {
		lp, err := r.model.CompletionLogps(seqs)
		if err != nil {
			return nil, nil, fmt.Errorf("reference log-probs: %w", err)
		}
		for j, i := range missing {
			r.cache[ex[i].Row] = [2]float64{sum32(lp[2*j]), sum32(lp[2*j+1])}
		}
	}
	for i, e := range ex {
		v := r.cache[e.Row]
		rc[i], rr[i] = v[0], v[1]
	}
	return rc, rr, nil
}

// checkStoredRefs compares the shards' reference log-probs with the policy's
// own at step 0 (policy = reference) on a few pairs: a mismatch means the
// shards were scored with another model or another context length, and
// training on them would optimise a wrong objective without any error.
func checkStoredRefs(policy *gpt.Model, rows []schemas.Row, nPos int) error {
	n := min(8, len(rows))
	seqs := make([]gpt.Sequence, 0, 2*n)
	ex := make([]Example, n)
	for i := 0; i < n; i++ {
		ex[i] = MakeExample(&rows[i], nPos)
		seqs = append(seqs, ex[i].Chosen, ex[i].Rejected)
	}
	lp, err := policy.CompletionLogps(seqs)
	if err != nil {
		return fmt.Errorf("check stored reference log-probs: %w", err)
	}
	for i, e := range ex {
		for k, want := range []float64{e.RefChosen, e.RefRejected} {
			got := sum32(lp[2*i+k])
			if math.Abs(got-want) > 1e-2+1e-4*math.Abs(want) {
				return fmt.Errorf("the shards' reference log-probs do not match the reference model's own "+
					"(pair %s: stored %.4f, model %.4f): were they scored with another checkpoint or context length? "+
					"Rescore with `go run ./pipelines/score`, or pass --compute_ref", e.Row.ID, want, got)
			}
		}
	}
	return nil
}
