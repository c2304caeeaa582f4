package transforms

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*shardResult)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*rejectsResult)(nil)).Elem())
	register.Function1x2(shardMarker)
	register.DoFn1x2[schemas.Row, int, schemas.Row](&shardKeyFn{})
	register.DoFn5x1[context.Context, int, func(*int) bool, func(*schemas.Row) bool, func(shardResult), error](&writeShardFn{})
	register.DoFn4x1[context.Context, []byte, func(*schemas.Reject) bool, func(rejectsResult), error](&writeRejectsFn{})
	register.Emitter1[shardResult]()
	register.Emitter1[rejectsResult]()
	register.Iter1[int]()
	register.Iter1[schemas.Row]()
	register.Iter1[schemas.Reject]()
}

var (
	rowsWritten    = beam.NewCounter("write", "rows")
	shardsWritten  = beam.NewCounter("write", "shards")
	rejectsWritten = beam.NewCounter("write", "rejects")
)

// Output layout, relative to the output directory.
const (
	PairsDir     = "pairs"
	RejectsDir   = "rejects"
	ManifestFile = "manifest.json"
	// histogramBins is the number of equal-width edit_ratio bins in the manifest.
	histogramBins = 20
)

// WriteOptions configure WriteArrow.
type WriteOptions struct {
	// Output is the output directory: a local path, gs://bucket/dir or memfs://dir.
	Output string
	// Shards is the number of Arrow files; every one is written, even if empty.
	Shards int
	// Meta goes into every shard's schema metadata.
	Meta schemas.Metadata
	// Format is the shard file format, schemas.FormatArrow (the default when
	// empty) or schemas.FormatParquet; it is also the shards' file extension
	// and the manifest's format.
	Format string
	// Manifest is the manifest to complete: the writer fills in the counts,
	// edit-distance statistics, shards, rejects and inputs and keeps the rest
	// (tokenizer, options, created_by).
	Manifest schemas.Manifest
}

// Tallies are what the manifest counts besides the rows and rejects themselves.
type Tallies struct {
	Read       beam.PCollection // int: per-stage counts of records read (pairs + reader rejects); summed
	Duplicates beam.PCollection // int: copies dropped per duplicated id (Dedupe); summed
	Inputs     beam.PCollection // schemas.InputFile (HashInputs)
}

// WriteArrow writes the rows as Arrow IPC files (or Parquet files, with
// opts.Format), the rejects as one JSON-lines file, and then manifest.json,
// which marks the output complete:
//
//	DIR/pairs/part-00000-of-0000N.arrow    rows sorted by id, one shard per hash(id) mod N (.parquet for Parquet)
//	DIR/rejects/part-00000-of-00001.jsonl  sorted by (source, line)
//	DIR/manifest.json
//
// Rows are sorted inside each shard because a runner delivers them in no fixed
// order; sorted, a rerun over the same input writes byte-identical files. Every
// file is written under a temporary name and renamed into place, so a reader
// never sees half a file, and the manifest is written by a step that takes the
// other writers' results as side inputs, so it is written last.
func WriteArrow(s beam.Scope, rows, rejects beam.PCollection, tallies Tallies, opts WriteOptions) {
	s = s.Scope("WriteArrow")
	if opts.Format == "" {
		opts.Format = schemas.FormatArrow
	}
	opts.Manifest.Format = opts.Format
	shards := writeShards(s, rows, opts)
	rejectFiles := beam.ParDo(s, &writeRejectsFn{Output: opts.Output}, beam.Impulse(s), beam.SideInput{Input: rejects})
	writeManifest(s, shards, rejectFiles, tallies, opts)
}

func writeShards(s beam.Scope, rows beam.PCollection, opts WriteOptions) beam.PCollection {
	s = s.Scope("Shards")
	// One marker per shard index, grouped with the rows, so that shards no row
	// hashes to still get their (empty) file and a reader can rely on names.
	indices := make([]int, opts.Shards)
	for i := range indices {
		indices[i] = i
	}
	markers := beam.ParDo(s, shardMarker, beam.CreateList(s, indices))
	keyed := beam.ParDo(s, &shardKeyFn{Shards: opts.Shards}, rows)
	grouped := beam.CoGroupByKey(s, markers, keyed)
	return beam.ParDo(s, &writeShardFn{Output: opts.Output, Shards: opts.Shards, Meta: opts.Meta, Format: opts.Format}, grouped)
}

func shardMarker(i int) (int, int) { return i, i }

// ShardOf is the shard an id belongs to: its first 16 hex digits mod n. The
// split (schemas.SplitFor) uses the last digits, so shards and splits are
// independent.
func ShardOf(id string, n int) int {
	var u uint64
	if b, err := hex.DecodeString(id[:min(16, len(id))]); err == nil && len(b) == 8 {
		u = binary.BigEndian.Uint64(b)
	}
	return int(u % uint64(n))
}

type shardKeyFn struct {
	Shards int
}

func (f *shardKeyFn) ProcessElement(r schemas.Row) (int, schemas.Row) {
	return ShardOf(r.ID, f.Shards), r
}

// shardResult is what the manifest needs from one written shard.
type shardResult struct {
	Index  int
	Path   string // relative to the output directory
	Rows   int64
	SHA256 string

	Train, Eval, LowDistance, Truncated int64
	SumDistance                         int64
	SumRatio                            float64 // summed in id order: deterministic
	RatioHistogram                      []int64 // histogramBins equal bins over [0, 1]
}

type writeShardFn struct {
	Output string
	Shards int
	Meta   schemas.Metadata
	Format string // schemas.FormatArrow ("" too) or schemas.FormatParquet
}

func (f *writeShardFn) ProcessElement(ctx context.Context, index int, _ func(*int) bool, rowIter func(*schemas.Row) bool, emit func(shardResult)) error {
	var rows []schemas.Row
	var r schemas.Row
	for rowIter(&r) {
		rows = append(rows, r)
		r = schemas.Row{}
	}
	slices.SortFunc(rows, func(a, b schemas.Row) int { return strings.Compare(a.ID, b.ID) })
	format := f.Format
	if format == "" {
		format = schemas.FormatArrow
	}
	data, err := schemas.EncodeShard(format, f.Meta, rows)
	if err != nil {
		return fmt.Errorf("encode shard %d of %d: %w", index, f.Shards, err)
	}
	rel := PairsDir + "/" + schemas.ShardName(index, f.Shards, format)
	if err := writeFileAtomic(ctx, joinPath(f.Output, rel), data); err != nil {
		return err
	}
	res := shardResult{Index: index, Path: rel, Rows: int64(len(rows)), SHA256: sha256Hex(data),
		RatioHistogram: make([]int64, histogramBins)}
	for i := range rows {
		r := &rows[i]
		if r.Split == schemas.SplitEval {
			res.Eval++
		} else {
			res.Train++
		}
		if r.LowDistance {
			res.LowDistance++
		}
		if r.Truncated {
			res.Truncated++
		}
		res.SumDistance += int64(r.EditDistance)
		res.SumRatio += float64(r.EditRatio)
		res.RatioHistogram[ratioBin(float64(r.EditRatio))]++
	}
	rowsWritten.Inc(ctx, res.Rows)
	shardsWritten.Inc(ctx, 1)
	emit(res)
	return nil
}

// ratioBin is the histogram bin of an edit ratio in [0, 1]; 1 falls in the last.
func ratioBin(ratio float64) int {
	return min(max(int(ratio*histogramBins), 0), histogramBins-1)
}

// rejectsResult is what the manifest needs from the rejects file.
type rejectsResult struct {
	Path    string
	Rows    int64
	SHA256  string
	Reasons []string // sorted
	Counts  []int64  // Counts[i] rejects had Reasons[i]
}

type writeRejectsFn struct {
	Output string
}

func (f *writeRejectsFn) ProcessElement(ctx context.Context, _ []byte, iter func(*schemas.Reject) bool, emit func(rejectsResult)) error {
	var rejects []schemas.Reject
	var r schemas.Reject
	for iter(&r) {
		rejects = append(rejects, r)
	}
	slices.SortFunc(rejects, compareRejects)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep chat markers like <|im_start|> readable
	byReason := map[string]int64{}
	for i := range rejects {
		if err := enc.Encode(&rejects[i]); err != nil {
			return fmt.Errorf("encode reject %s line %d: %w", rejects[i].Source, rejects[i].Line, err)
		}
		byReason[rejects[i].Reason]++
	}
	rel := RejectsDir + "/" + schemas.ShardName(0, 1, "jsonl")
	if err := writeFileAtomic(ctx, joinPath(f.Output, rel), buf.Bytes()); err != nil {
		return err
	}
	res := rejectsResult{Path: rel, Rows: int64(len(rejects)), SHA256: sha256Hex(buf.Bytes())}
	for reason := range byReason {
		res.Reasons = append(res.Reasons, reason)
	}
	slices.Sort(res.Reasons)
	for _, reason := range res.Reasons {
		res.Counts = append(res.Counts, byReason[reason])
	}
	rejectsWritten.Inc(ctx, res.Rows)
	emit(res)
	return nil
}

// compareRejects orders rejects by where they came from; the remaining fields
// only break ties so that the order is total.
func compareRejects(a, b schemas.Reject) int {
	if c := strings.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	if a.Line != b.Line {
		if a.Line < b.Line {
			return -1
		}
		return 1
	}
	for _, c := range []int{
		strings.Compare(a.Reason, b.Reason), strings.Compare(a.Detail, b.Detail),
		strings.Compare(a.Raw, b.Raw), strings.Compare(a.RawBase64, b.RawBase64),
	} {
		if c != 0 {
			return c
		}
	}
	return 0
}

// joinPath appends slash-separated elements to a directory that may be a URL:
// path.Join would collapse memfs://x or gs://b/x into memfs:/x.
func joinPath(dir string, elems ...string) string {
	p := dir
	for _, e := range elems {
		e = strings.Trim(e, "/")
		if e == "" {
			continue
		}
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		p += e
	}
	return p
}

// writeFileAtomic writes data under a temporary name beside path and renames
// it into place (copy and remove where the filesystem cannot rename), so a
// reader never sees a partial file and a retried write replaces, not appends.
func writeFileAtomic(ctx context.Context, path string, data []byte) error {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer fs.Close()
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("write %s: temporary name: %w", path, err)
	}
	dir, name := path[:strings.LastIndex(path, "/")+1], path[strings.LastIndex(path, "/")+1:]
	tmp := dir + "." + name + ".tmp-" + hex.EncodeToString(suffix[:])
	if err := filesystem.Write(ctx, fs, tmp, data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := filesystem.Rename(ctx, fs, tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
