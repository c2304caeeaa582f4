package transforms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*schemas.InputFile)(nil)).Elem())
	register.DoFn3x1[context.Context, string, func(string), error](&expandInputFn{})
	register.DoFn3x1[context.Context, string, func(schemas.InputFile), error](&hashInputFn{})
	register.DoFn7x1[context.Context, []byte, func(*shardResult) bool, func(*rejectsResult) bool,
		func(*int) bool, func(*int) bool, func(*schemas.InputFile) bool, error](&writeManifestFn{})
	register.Emitter1[string]()
	register.Emitter1[schemas.InputFile]()
	register.Iter1[shardResult]()
	register.Iter1[rejectsResult]()
	register.Iter1[schemas.InputFile]()
}

// HashInputs lists the files the globs match and records each one's size and
// sha256 for the manifest, so a later run can tell whether an output still
// matches its inputs. Files are hashed in parallel, one element each.
func HashInputs(s beam.Scope, globs []string) beam.PCollection {
	s = s.Scope("HashInputs")
	paths := beam.ParDo(s, &expandInputFn{}, beam.CreateList(s, globs))
	return beam.ParDo(s, &hashInputFn{}, beam.Reshuffle(s, paths))
}

type expandInputFn struct{}

func (f *expandInputFn) ProcessElement(ctx context.Context, glob string, emit func(string)) error {
	fs, err := filesystem.New(ctx, glob)
	if err != nil {
		return fmt.Errorf("list inputs %s: %w", glob, err)
	}
	defer fs.Close()
	files, err := fs.List(ctx, glob)
	if err != nil {
		return fmt.Errorf("list inputs %s: %w", glob, err)
	}
	for _, p := range files {
		emit(p)
	}
	return nil
}

type hashInputFn struct{}

func (f *hashInputFn) ProcessElement(ctx context.Context, path string, emit func(schemas.InputFile)) error {
	in, err := HashInputFile(ctx, path)
	if err != nil {
		return err
	}
	emit(in)
	return nil
}

// HashInputFile identifies one input file by size and sha256, read through
// Beam's filesystem (local, gs://, memfs://). The manifest records these so a
// later run can tell whether an output still matches its inputs.
func HashInputFile(ctx context.Context, path string) (schemas.InputFile, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return schemas.InputFile{}, fmt.Errorf("hash input %s: %w", path, err)
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return schemas.InputFile{}, fmt.Errorf("hash input %s: %w", path, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return schemas.InputFile{}, fmt.Errorf("hash input %s: %w", path, err)
	}
	return schemas.InputFile{Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func writeManifest(s beam.Scope, shards, rejectFiles beam.PCollection, t Tallies, opts WriteOptions) {
	s = s.Scope("Manifest")
	beam.ParDo0(s, &writeManifestFn{Output: opts.Output, Manifest: opts.Manifest, StartUnixNano: time.Now().UnixNano()},
		beam.Impulse(s),
		beam.SideInput{Input: shards}, beam.SideInput{Input: rejectFiles},
		beam.SideInput{Input: t.Read}, beam.SideInput{Input: t.Duplicates}, beam.SideInput{Input: t.Inputs})
}

// writeManifestFn completes the manifest from the writers' results and writes
// it. It fails the pipeline, leaving the output incomplete, if the counts do
// not reconcile: a manifest is a promise that nothing was lost.
type writeManifestFn struct {
	Output        string
	Manifest      schemas.Manifest
	StartUnixNano int64 // when the pipeline was built, for wall_seconds
}

func (f *writeManifestFn) ProcessElement(ctx context.Context, _ []byte,
	shards func(*shardResult) bool, rejectFiles func(*rejectsResult) bool,
	reads func(*int) bool, duplicates func(*int) bool, inputs func(*schemas.InputFile) bool) error {
	m := f.Manifest
	var results []shardResult
	var sr shardResult
	for shards(&sr) {
		results = append(results, sr)
		sr = shardResult{}
	}
	slices.SortFunc(results, func(a, b shardResult) int { return a.Index - b.Index })
	if err := completeShards(&m, results); err != nil {
		return err
	}

	var rr rejectsResult
	m.RejectsByReason = map[string]int64{}
	m.RejectShards = nil
	for rejectFiles(&rr) {
		m.RejectShards = append(m.RejectShards, schemas.Shard{Path: rr.Path, Rows: rr.Rows, SHA256: rr.SHA256})
		m.Counts.Rejected += rr.Rows
		for i, reason := range rr.Reasons {
			m.RejectsByReason[reason] += rr.Counts[i]
		}
	}
	var n int
	for reads(&n) {
		m.Counts.Read += int64(n)
	}
	for duplicates(&n) {
		m.Counts.Duplicates += int64(n)
	}

	m.Inputs = nil
	var in schemas.InputFile
	for inputs(&in) {
		m.Inputs = append(m.Inputs, in)
	}
	// The same file matched by two globs is one input.
	slices.SortFunc(m.Inputs, func(a, b schemas.InputFile) int { return strings.Compare(a.Path, b.Path) })
	m.Inputs = slices.CompactFunc(m.Inputs, func(a, b schemas.InputFile) bool { return a.Path == b.Path })

	if err := m.Counts.Check(); err != nil {
		return fmt.Errorf("manifest for %s: %w", f.Output, err)
	}
	m.SchemaVersion = schemas.SchemaVersion
	m.WallSeconds = time.Since(time.Unix(0, f.StartUnixNano)).Seconds()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return writeFileAtomic(ctx, joinPath(f.Output, ManifestFile), append(data, '\n'))
}

// completeShards fills the shard list, the row counts and the edit-distance
// statistics from the shard writers' results, in shard order.
func completeShards(m *schemas.Manifest, results []shardResult) error {
	m.Shards = nil
	hist := make([]int64, histogramBins)
	var sumDistance int64
	var sumRatio float64
	for i, r := range results {
		if r.Index != i {
			return fmt.Errorf("manifest: shard %d missing (got %d)", i, r.Index)
		}
		m.Shards = append(m.Shards, schemas.Shard{Path: r.Path, Rows: r.Rows, SHA256: r.SHA256})
		m.Counts.Written += r.Rows
		m.Counts.Train += r.Train
		m.Counts.Eval += r.Eval
		m.Counts.LowDistance += r.LowDistance
		m.Counts.Truncated += r.Truncated
		sumDistance += r.SumDistance
		sumRatio += r.SumRatio
		for b, c := range r.RatioHistogram {
			hist[b] += c
		}
	}
	if want := m.Options.Shards; want > 0 && len(results) != want {
		return fmt.Errorf("manifest: %d shards written, want %d", len(results), want)
	}
	es := &m.EditDistance
	es.RatioHistogram = make([]schemas.Bin, histogramBins)
	for b := range hist {
		es.RatioHistogram[b] = schemas.Bin{
			Lo: float64(b) / histogramBins, Hi: float64(b+1) / histogramBins, Count: hist[b],
		}
	}
	es.LowDistanceRatio = m.Options.LowDistanceRatio
	if w := m.Counts.Written; w > 0 {
		es.MeanDistance = float64(sumDistance) / float64(w)
		es.MeanRatio = sumRatio / float64(w)
		es.LowDistanceFraction = float64(m.Counts.LowDistance) / float64(w)
	}
	return nil
}

// ReadManifest reads DIR/manifest.json.
func ReadManifest(ctx context.Context, dir string) (schemas.Manifest, error) {
	path := joinPath(dir, ManifestFile)
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return schemas.Manifest{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer fs.Close()
	data, err := filesystem.Read(ctx, fs, path)
	if err != nil {
		return schemas.Manifest{}, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := schemas.ParseManifest(data)
	if err != nil {
		return schemas.Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// SummaryTable renders a manifest's counts the way datatrove ends a run: one
// line per step with what it kept and dropped and why, read top to bottom as a
// funnel from records read to rows written.
func SummaryTable(m schemas.Manifest) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "step\tkept\tdropped\twhy")
	c := m.Counts
	fmt.Fprintf(tw, "read\t%d\t-\t%s\n", c.Read, plural(len(m.Inputs), "input file"))
	kept := c.Read
	reasons := make([]string, 0, len(m.RejectsByReason))
	for r := range m.RejectsByReason {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		n := m.RejectsByReason[r]
		kept -= n
		fmt.Fprintf(tw, "reject\t%d\t%d\t%s\n", kept, n, r)
	}
	kept -= c.Duplicates
	fmt.Fprintf(tw, "dedupe\t%d\t%d\tduplicates (same normalised prompt, chosen, rejected)\n", kept, c.Duplicates)
	fmt.Fprintf(tw, "written\t%d\t-\ttrain %d / eval %d, %d truncated, %s\n", c.Written, c.Train, c.Eval, c.Truncated,
		plural(len(m.Shards), "shard"))
	fmt.Fprintf(tw, "low_distance\t%d\t-\tedit_ratio <= %g (%.1f%% of written; mean ratio %.3f, mean distance %.1f)\n",
		c.LowDistance, m.Options.LowDistanceRatio, 100*m.EditDistance.LowDistanceFraction,
		m.EditDistance.MeanRatio, m.EditDistance.MeanDistance)
	tw.Flush()
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
