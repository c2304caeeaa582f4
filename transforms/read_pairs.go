package transforms

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	// ReadPairs promises local paths and gs:// without the caller having to
	// know which filesystem packages to import.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/records"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*schemas.Pair)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*schemas.Reject)(nil)).Elem())
	register.DoFn4x0[context.Context, []string, func(string), func(schemas.Reject)](&matchInputsFn{})
	register.DoFn4x0[context.Context, string, func(schemas.Pair), func(schemas.Reject)](&readFileFn{})
	register.Emitter1[string]()
	register.Emitter1[schemas.Pair]()
	register.Emitter1[schemas.Reject]()
}

// Counters of the read stage. pairs_read counts every record seen, kept or
// rejected, so the manifest's read == written + rejected + duplicates holds.
var (
	pairsRead = beam.NewCounter("read", "pairs_read")
	filesRead = beam.NewCounter("read", "files_read")
	// rejectedByReason has one counter per reason the reader can give,
	// named "rejected_<reason>" so the counter table reads like the dead letters.
	rejectedByReason = func() map[string]beam.Counter {
		m := map[string]beam.Counter{}
		for _, r := range []string{
			schemas.ReasonInvalidJSON, schemas.ReasonMissingField, schemas.ReasonWrongType,
			schemas.ReasonEmptyCompletion, schemas.ReasonInvalidUTF8, schemas.ReasonDegenerate,
			schemas.ReasonEmptyPrompt, schemas.ReasonTooLarge, schemas.ReasonUnreadable,
		} {
			m[r] = beam.NewCounter("read", "rejected_"+r)
		}
		return m
	}()
)

// countReject counts a reject under its reason. A reason missing from the
// table (one added to the records package later) still gets its counter
// rather than a nil-counter panic.
func countReject(ctx context.Context, reason string) {
	c, ok := rejectedByReason[reason]
	if !ok {
		c = beam.NewCounter("read", "rejected_"+reason)
	}
	c.Inc(ctx, 1)
}

// ReadPairs reads every file matching the globs (comma-separated lists are
// split by the caller) through Beam's filesystem abstraction (local paths,
// gs://, memfs://), returning valid pairs (schemas.Pair) and dead letters
// (schemas.Reject).
//
// Files are JSON Lines (.jsonl, .json, anything else) or Parquet (.parquet,
// or any file starting with Parquet's magic), gzip-compressed or not. Bad
// records and unreadable files become rejects, never a failed job; see
// records.JSONL and records.Parquet for what each defect yields. The globs are
// matched again when the pipeline runs (on the workers, for gs://), so call
// ExpandInputs first to fail fast on a missing input.
func ReadPairs(s beam.Scope, globs []string) (pairs, rejects beam.PCollection) {
	return readPairs(s, globs, records.DefaultMaxLineBytes)
}

// readPairs is ReadPairs with the line limit exposed, so tests can exercise
// record_too_large with small inputs.
func readPairs(s beam.Scope, globs []string, maxLineBytes int) (pairs, rejects beam.PCollection) {
	s = s.Scope("ReadPairs")
	// All globs go in one element so a file matched by two globs is read once.
	files, unmatched := beam.ParDo2(s, &matchInputsFn{}, beam.Create(s, globs))
	// Spread the files over workers: Create puts them all in one bundle.
	files = beam.Reshuffle(s, files)
	pairs, rejects = beam.ParDo2(s, &readFileFn{MaxLineBytes: maxLineBytes}, files)
	return pairs, beam.Flatten(s, rejects, unmatched)
}

// ExpandInputs resolves globs at pipeline-construction time so a missing input
// fails fast with a clear error naming the path ("input \"/x/*.jsonl\" matches
// no files"); returns the sorted file list, each file once.
func ExpandInputs(ctx context.Context, globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, errors.New("no input given")
	}
	var all []string
	for _, glob := range globs {
		files, err := matchGlob(ctx, glob)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("input %q matches no files", glob)
		}
		all = append(all, files...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

func matchGlob(ctx context.Context, glob string) ([]string, error) {
	if strings.TrimSpace(glob) == "" {
		return nil, errors.New("empty input path")
	}
	fs, err := filesystem.New(ctx, glob)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", glob, err)
	}
	defer fs.Close()
	files, err := fs.List(ctx, glob)
	if err != nil {
		return nil, fmt.Errorf("list input %q: %w", glob, err)
	}
	return files, nil
}

// matchInputsFn turns the globs into the distinct files they match. A glob
// that matches nothing by the time the job runs is a reject rather than a
// failure, so it shows up beside the other dead letters.
type matchInputsFn struct{}

func (f *matchInputsFn) ProcessElement(ctx context.Context, globs []string, emit func(string), reject func(schemas.Reject)) {
	seen := map[string]bool{}
	for _, glob := range globs {
		files, err := matchGlob(ctx, glob)
		if err == nil && len(files) == 0 {
			err = fmt.Errorf("input %q matches no files", glob)
		}
		if err != nil {
			pairsRead.Inc(ctx, 1)
			countReject(ctx, schemas.ReasonUnreadable)
			reject(schemas.Reject{Source: glob, Reason: schemas.ReasonUnreadable, Detail: err.Error()})
			continue
		}
		for _, file := range files {
			if !seen[file] {
				seen[file] = true
				emit(file)
			}
		}
	}
}

// readFileFn streams the records of one file. Compression is recognised by
// gzip's magic bytes rather than trusted from the name: GCS may serve a
// ".gz" object already decompressed, and a compressed file may lack the
// suffix.
type readFileFn struct {
	// MaxLineBytes is the longest JSONL line parsed; longer lines become
	// record_too_large rejects.
	MaxLineBytes int
}

func (f *readFileFn) ProcessElement(ctx context.Context, path string, emitPair func(schemas.Pair), emitReject func(schemas.Reject)) {
	filesRead.Inc(ctx, 1)
	emit := func(p *schemas.Pair, rej *schemas.Reject) {
		pairsRead.Inc(ctx, 1)
		if rej != nil {
			countReject(ctx, rej.Reason)
			emitReject(*rej)
			return
		}
		emitPair(*p)
	}
	for p, rej := range f.records(ctx, path) {
		emit(p, rej)
	}
}

// records opens path and yields its records; failures to open or decode the
// file are yielded as one unreadable_file reject.
func (f *readFileFn) records(ctx context.Context, path string) iter.Seq2[*schemas.Pair, *schemas.Reject] {
	return func(yield func(*schemas.Pair, *schemas.Reject) bool) {
		fail := func(what string, err error) {
			yield(nil, &schemas.Reject{
				Source: path,
				Reason: schemas.ReasonUnreadable,
				Detail: fmt.Sprintf("%s %s: %v", what, path, err),
			})
		}
		fs, err := filesystem.New(ctx, path)
		if err != nil {
			fail("open", err)
			return
		}
		defer fs.Close()
		rc, err := fs.OpenRead(ctx, path)
		if err != nil {
			fail("open", err)
			return
		}
		defer rc.Close()

		content := bufio.NewReaderSize(rc, 64<<10)
		if magic, _ := content.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(content)
			if err != nil {
				fail("gunzip", err)
				return
			}
			defer zr.Close()
			content = bufio.NewReaderSize(zr, 64<<10)
		}
		head, _ := content.Peek(4)
		if len(head) == 0 {
			return // an empty file holds no records, whatever its format
		}

		name := strings.TrimSuffix(strings.ToLower(path), ".gz")
		if strings.HasSuffix(name, ".parquet") || string(head) == "PAR1" {
			// Parquet needs random access, and filesystems only stream, so the
			// whole (decompressed) file is held in memory.
			data, err := io.ReadAll(content)
			if err != nil {
				fail("read", err)
				return
			}
			for p, rej := range records.Parquet(data, path) {
				if !yield(p, rej) {
					return
				}
			}
			return
		}
		for p, rej := range records.JSONL(content, path, f.MaxLineBytes) {
			if !yield(p, rej) {
				return
			}
		}
	}
}
