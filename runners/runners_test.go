package runners

import (
	"context"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	beamrunners "github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
)

var squared = beam.NewCounter("runners_test", "squared")

func init() { register.Function2x1(square) }

func square(ctx context.Context, x int) int {
	squared.Inc(ctx, 1)
	return x * x
}

// TestRunDefaultAndDirect runs one small pipeline on the default runner and on
// --runner=direct (which users know by name), checking the results and that
// the counters come back through the PipelineResult.
func TestRunDefaultAndDirect(t *testing.T) {
	old := *beamrunners.Runner
	t.Cleanup(func() { *beamrunners.Runner = old })
	for _, runner := range []string{"", "direct"} {
		*beamrunners.Runner = runner
		want := runner
		if want == "" {
			want = Default
		}
		if Name() != want {
			t.Fatalf("--runner=%q: Name() = %q, want %q", runner, Name(), want)
		}
		p, s := beam.NewPipelineWithRoot()
		sum := stats.Sum(s, beam.ParDo(s, square, beam.Create(s, 1, 2, 3)))
		passert.Equals(s, sum, 14)
		res, err := Run(context.Background(), p)
		if err != nil {
			t.Fatalf("%s: %v", Name(), err)
		}
		var n int64
		for _, c := range res.Metrics().AllMetrics().Counters() {
			if c.Key.Name == "squared" {
				n += c.Committed
			}
		}
		if n != 3 {
			t.Errorf("%s: counter squared = %d, want 3", Name(), n)
		}
	}
}
