package transforms

import (
	"context"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/editdist"
)

func init() {
	register.DoFn3x0[context.Context, schemas.Row, func(schemas.Row)](&editDistanceFn{})
}

var (
	editRows        = beam.NewCounter("edit_distance", "rows")
	editLowDistance = beam.NewCounter("edit_distance", "low_distance")
)

// EditDistance fills each row's edit_distance, edit_ratio, first_diff and
// low_distance, comparing chosen_ids with rejected_ids (EOS included, so a
// completion that was cut differs from one that ended). Low-distance pairs
// (ratio <= lowDistanceRatio) are the ones on which plain DPO can lower the
// likelihood of the preferred answer, the failure DPOP fixes.
func EditDistance(s beam.Scope, rows beam.PCollection, lowDistanceRatio float64) beam.PCollection {
	s = s.Scope("EditDistance")
	return beam.ParDo(s, &editDistanceFn{LowDistanceRatio: lowDistanceRatio}, rows)
}

type editDistanceFn struct {
	LowDistanceRatio float64
}

func (f *editDistanceFn) ProcessElement(ctx context.Context, r schemas.Row, emit func(schemas.Row)) {
	MeasureEdits(&r, f.LowDistanceRatio)
	editRows.Inc(ctx, 1)
	if r.LowDistance {
		editLowDistance.Inc(ctx, 1)
	}
	emit(r)
}

// MeasureEdits sets r's edit-distance fields from its chosen and rejected ids.
// The ratio is the distance over the longer completion, so it lies in [0, 1];
// two empty completions have ratio 0.
func MeasureEdits(r *schemas.Row, lowDistanceRatio float64) {
	d := editdist.Distance(r.ChosenIDs, r.RejectedIDs)
	r.EditDistance = int32(d)
	ratio := 0.0
	if n := max(len(r.ChosenIDs), len(r.RejectedIDs)); n > 0 {
		ratio = float64(d) / float64(n)
	}
	r.EditRatio = float32(ratio)
	r.FirstDiff = int32(editdist.FirstDiff(r.ChosenIDs, r.RejectedIDs))
	// Compare in float64: float32(3.0/20) is just above 0.15, and a pair at
	// exactly the threshold must count as low-distance.
	r.LowDistance = ratio <= lowDistanceRatio
}
