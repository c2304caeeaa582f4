// Package runners chooses the Beam runner for dpopflow's pipelines from the
// --runner flag, the way beamx does, with Prism (in-process, in memory) as the
// default, and registers the filesystems the pipelines read and write.
//
// Every main calls flag.Parse, then beam.Init, then builds its pipeline and
// hands it to Run. The runner flags are Beam's own; the useful ones are:
//
//	--runner=prism          default: runs in this process on all cores
//	--runner=direct         Beam's DirectRunner (deprecated upstream; it never
//	                        serializes DoFns, so it can hide registration bugs)
//	--runner=universal --endpoint=HOST:PORT --environment_type=LOOPBACK
//	                        any portable job server, e.g. a standalone Prism
//	                        (`go run github.com/apache/beam/sdks/v2/go/cmd/prism --job_port=8073`)
//	--runner=flink --endpoint=HOST:8099 --environment_type=LOOPBACK|DOCKER|PROCESS
//	--runner=spark --endpoint=HOST:8099 --environment_type=...
//	                        Flink and Spark job servers (each job server's
//	                        endpoint defaults to port 8099; Spark's 4040 is its
//	                        web UI, not an endpoint); LOOPBACK runs the
//	                        workers in this process (for a local cluster), the
//	                        default DOCKER builds a container image first
//	--runner=dataflow --project=P --region=R --staging_location=gs://B/staging
//	                        [--temp_location=gs://B/tmp] [--num_workers=N]
//	                        Google Cloud Dataflow; inputs and output on gs://
//
// Filesystems registered: local paths, gs:// (Google Cloud Storage) and
// memfs:// (in-memory, for tests).
package runners

import (
	"context"
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamrunners "github.com/apache/beam/sdks/v2/go/pkg/beam/runners"

	// The reflection-free execution paths for common signatures.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/core/runtime/exec/optimized"

	// Filesystems, registered by scheme.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/memfs"

	// Runners, registered by name for beam.Run.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/spark"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"
)

// Default is the runner used when --runner is not given.
const Default = "prism"

// Name is the runner Run will use: the --runner flag, or Default.
func Name() string {
	if r := *beamrunners.Runner; r != "" {
		return r
	}
	return Default
}

// Run executes p on the runner named by --runner (Prism by default) and waits
// for it to finish. The result carries the pipeline's metrics (counters).
func Run(ctx context.Context, p *beam.Pipeline) (beam.PipelineResult, error) {
	r, err := beam.Run(ctx, Name(), p)
	if err != nil {
		return nil, fmt.Errorf("run pipeline on %s: %w", Name(), err)
	}
	return r, nil
}
