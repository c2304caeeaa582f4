package transforms

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

// Counters of the reference-scoring stage.
var (
	pairsScored     = beam.NewCounter("dpopflow", "pairs_scored")
	tokensScored    = beam.NewCounter("dpopflow", "tokens_scored")         // completion tokens, chosen + rejected
	promptsCutShort = beam.NewCounter("dpopflow", "ref_prompts_truncated") // sequences whose prompt start was cut to fit
)

// Checkpoint file names inside a Hugging Face GPT-2 directory.
const (
	ckptConfigFile  = "config.json"
	ckptWeightsFile = "model.safetensors"
)

// refBufferBatches is how many forward batches' worth of sequences refLogProbsFn
// buffers before scoring: sorting a larger buffer by length wastes less on
// padding, a smaller one bounds memory on large bundles.
const refBufferBatches = 16

func init() {
	register.DoFn3x1[context.Context, schemas.Row, func(schemas.Row), error](&refLogProbsFn{})
	register.Emitter1[schemas.Row]()
}

// RefLogProbs fills the four ref_* fields of every row with the log-probs that
// the GPT-2 checkpoint in directory ckpt (local path, gs://, memfs://) assigns to
// the chosen and rejected completion tokens given the prompt. batchSize is the
// number of sequences per forward pass (a pair contributes two); rows are
// buffered per bundle and sorted by length so each batch pads little.
//
// A sequence longer than the model's context loses the start of its prompt
// (the completion is what is scored, and its nearest context matters most); a
// completion that does not fit on its own fails the pipeline, since scoring only
// part of it would silently change the DPOP loss. Preprocess with a
// --max_length no larger than the model's n_positions.
func RefLogProbs(s beam.Scope, rows beam.PCollection, ckpt string, batchSize int) beam.PCollection {
	s = s.Scope("RefLogProbs")
	if batchSize < 1 {
		batchSize = 1
	}
	return beam.ParDo(s, &refLogProbsFn{Ckpt: ckpt, BatchSize: batchSize}, rows)
}

// RefModelSHA256 loads the checkpoint (through the per-process cache, so the
// workers of an in-process runner reuse it) and returns the sha256 of its
// weights: the value recorded as the shards' ref_model.
func RefModelSHA256(ctx context.Context, ckpt string) (string, error) {
	m, err := loadRefModel(ctx, ckpt)
	if err != nil {
		return "", err
	}
	return m.model.WeightsSHA256(), nil
}

// refLogProbsFn buffers the rows of a bundle, scores them in length-sorted
// batches and emits them with the ref_* fields set. Rows leave in a different
// order than they came, which a PCollection does not promise anyway.
type refLogProbsFn struct {
	Ckpt      string
	BatchSize int

	ref *refModel
	buf []schemas.Row
}

func (f *refLogProbsFn) Setup(ctx context.Context) error {
	m, err := loadRefModel(ctx, f.Ckpt)
	if err != nil {
		return err
	}
	f.ref = m
	return nil
}

func (f *refLogProbsFn) ProcessElement(ctx context.Context, row schemas.Row, emit func(schemas.Row)) error {
	f.buf = append(f.buf, row)
	if 2*len(f.buf) >= refBufferBatches*f.BatchSize {
		return f.flush(ctx, emit)
	}
	return nil
}

func (f *refLogProbsFn) FinishBundle(ctx context.Context, emit func(schemas.Row)) error {
	return f.flush(ctx, emit)
}

func (f *refLogProbsFn) flush(ctx context.Context, emit func(schemas.Row)) error {
	if len(f.buf) == 0 {
		return nil
	}
	// Drop the buffer even on failure: a retried bundle starts clean.
	rows := f.buf
	f.buf = f.buf[:0]
	if err := scoreRows(ctx, f.ref, rows, f.BatchSize); err != nil {
		return err
	}
	var tokens int64
	for _, r := range rows {
		tokens += int64(len(r.ChosenIDs) + len(r.RejectedIDs))
		emit(r)
	}
	pairsScored.Inc(ctx, int64(len(rows)))
	tokensScored.Inc(ctx, tokens)
	// The emitted rows share their slices with the caller now; forget them.
	clear(rows)
	return nil
}

// scoreRows sets the ref_* fields of rows in place. It is the Beam-free core of
// RefLogProbs, kept apart so it can be tested and benchmarked on its own.
func scoreRows(ctx context.Context, ref *refModel, rows []schemas.Row, batchSize int) error {
	nPos := ref.model.Config().NPositions
	type item struct {
		seq      gpt.Sequence
		row      int
		rejected bool
	}
	items := make([]item, 0, 2*len(rows))
	for i := range rows {
		r := &rows[i]
		for _, rej := range []bool{false, true} {
			completion := r.ChosenIDs
			if rej {
				completion = r.RejectedIDs
			}
			seq, err := fitContext(r.PromptIDs, completion, nPos)
			if err != nil {
				which := "chosen"
				if rej {
					which = "rejected"
				}
				return fmt.Errorf("score pair %s (%s): %w", r.ID, which, err)
			}
			if len(seq.Prompt) < len(r.PromptIDs) {
				promptsCutShort.Inc(ctx, 1)
			}
			items = append(items, item{seq: seq, row: i, rejected: rej})
		}
	}
	// Sequences of similar length share a batch, so little of it is padding.
	// Stable, so equal inputs give the same batches run after run.
	sort.SliceStable(items, func(a, b int) bool {
		return len(items[a].seq.Prompt)+len(items[a].seq.Completion) <
			len(items[b].seq.Prompt)+len(items[b].seq.Completion)
	})
	seqs := make([]gpt.Sequence, 0, batchSize)
	for lo := 0; lo < len(items); lo += batchSize {
		hi := min(lo+batchSize, len(items))
		seqs = seqs[:0]
		for _, it := range items[lo:hi] {
			seqs = append(seqs, it.seq)
		}
		logps, err := ref.completionLogps(seqs)
		if err != nil {
			return fmt.Errorf("reference log-probs with %s: %w", ref.ckpt, err)
		}
		if len(logps) != len(seqs) {
			return fmt.Errorf("reference log-probs with %s: %d results for %d sequences", ref.ckpt, len(logps), len(seqs))
		}
		for k, it := range items[lo:hi] {
			lp := logps[k]
			if len(lp) != len(it.seq.Completion) {
				return fmt.Errorf("reference log-probs with %s: %d values for %d completion tokens",
					ref.ckpt, len(lp), len(it.seq.Completion))
			}
			// Sum in float64: a float32 running sum drifts on long completions.
			var sum float64
			for _, v := range lp {
				sum += float64(v)
			}
			r := &rows[it.row]
			if it.rejected {
				r.RefRejectedLogps, r.RefRejectedLogp = lp, float32(sum)
			} else {
				r.RefChosenLogps, r.RefChosenLogp = lp, float32(sum)
			}
		}
	}
	return nil
}

// fitContext returns the sequence the model can score: the network reads
// prompt ++ completion[:len-1], which must fit in nPos positions and hold at
// least one prompt token, so the prompt loses tokens from its start.
func fitContext(prompt, completion []int32, nPos int) (gpt.Sequence, error) {
	if len(prompt) == 0 {
		return gpt.Sequence{}, fmt.Errorf("empty prompt: the first completion token has nothing to be conditioned on")
	}
	if len(completion) == 0 {
		return gpt.Sequence{}, fmt.Errorf("empty completion")
	}
	if len(completion) > nPos {
		return gpt.Sequence{}, fmt.Errorf("completion of %d tokens does not fit the reference model's context of %d "+
			"(with at least one prompt token); preprocess with --max_length no larger than the model's n_positions",
			len(completion), nPos)
	}
	keep := min(len(prompt), nPos+1-len(completion))
	return gpt.Sequence{Prompt: prompt[len(prompt)-keep:], Completion: completion}, nil
}

// refModel is a loaded checkpoint shared by every DoFn instance in the process.
// The model serialises its own forward passes (they already use every core).
type refModel struct {
	ckpt  string
	model *gpt.Model
}

func (r *refModel) completionLogps(seqs []gpt.Sequence) ([][]float32, error) {
	return r.model.CompletionLogps(seqs)
}

// The per-process model cache. Setup may run many times per process (one DoFn
// instance per bundle thread) and Teardown never runs in the Go SDK, so loading
// in Setup without a cache would hold one copy of the weights per instance.
var (
	refModelsMu sync.Mutex
	refModels   = map[string]*refModelSlot{}
	// refModelLoads counts checkpoint reads, so tests can see the cache work.
	refModelLoads atomic.Int64
)

type refModelSlot struct {
	mu sync.Mutex
	m  *refModel
}

func loadRefModel(ctx context.Context, ckpt string) (*refModel, error) {
	refModelsMu.Lock()
	slot := refModels[ckpt]
	if slot == nil {
		slot = &refModelSlot{}
		refModels[ckpt] = slot
	}
	refModelsMu.Unlock()

	// A per-checkpoint lock rather than sync.Once: a failed read (a flaky gs://
	// fetch) is not cached, so a retried bundle tries again.
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.m != nil {
		return slot.m, nil
	}
	model, err := readCheckpoint(ctx, ckpt)
	if err != nil {
		return nil, err
	}
	slot.m = &refModel{ckpt: ckpt, model: model}
	return slot.m, nil
}

// readCheckpoint reads a GPT-2 checkpoint directory through Beam's filesystem
// abstraction, so the same code reads local, gs:// and memfs:// checkpoints.
func readCheckpoint(ctx context.Context, dir string) (*gpt.Model, error) {
	refModelLoads.Add(1)
	fs, err := filesystem.New(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("open reference checkpoint %s: %w", dir, err)
	}
	defer fs.Close()
	read := func(name string) ([]byte, error) {
		p := ckptPath(dir, name)
		rc, err := fs.OpenRead(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("read reference checkpoint file %s: %w", p, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return nil, fmt.Errorf("read reference checkpoint file %s: %w", p, err)
		}
		return b, nil
	}
	cfg, err := read(ckptConfigFile)
	if err != nil {
		return nil, err
	}
	weights, err := read(ckptWeightsFile)
	if err != nil {
		return nil, err
	}
	m, err := gpt.LoadBytes(cfg, weights)
	if err != nil {
		return nil, fmt.Errorf("load reference checkpoint %s: %w", dir, err)
	}
	return m, nil
}

// ckptPath names a file inside a directory given as a path or a URL. Not
// path.Join: it would turn "memfs://x" into "memfs:/x".
func ckptPath(dir, name string) string {
	return strings.TrimRight(dir, "/") + "/" + name
}
