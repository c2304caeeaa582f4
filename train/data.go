package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"   // gs://
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local" // plain paths
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/memfs" // memfs:// (tests)

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

// Dataset is a preprocessed output directory read into memory: the pairs are
// small (token ids), and training revisits them every epoch.
type Dataset struct {
	Dir      string
	Manifest schemas.Manifest
	// Meta is the shards' schema metadata (the same for every shard).
	Meta        schemas.Metadata
	Train, Eval []schemas.Row
}

// Scored reports whether the rows carry reference log-probs.
func (d *Dataset) Scored() bool { return d.Meta.RefModel != "" }

// Fingerprint is the sha256 of the shard checksums in manifest order: it
// changes whenever any row does.
func (d *Dataset) Fingerprint() string {
	h := sha256.New()
	for _, s := range d.Manifest.Shards {
		fmt.Fprintf(h, "%s %s\n", s.Path, s.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// joinURL appends a manifest-relative path to a directory that may be a URL:
// path.Join would turn "memfs://x" into "memfs:/x".
func joinURL(dir, rel string) string {
	return strings.TrimSuffix(dir, "/") + "/" + strings.TrimPrefix(rel, "/")
}

// LoadData reads dir/manifest.json and every shard it lists, checking each
// shard's sha256 against the manifest, and splits the rows into train and eval.
// dir may be a local path, gs://bucket/path or memfs://path.
func LoadData(ctx context.Context, dir string) (*Dataset, error) {
	fs, err := filesystem.New(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", dir, err)
	}
	defer fs.Close()
	raw, err := filesystem.Read(ctx, fs, joinURL(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("%s has no manifest.json: incomplete or not a dpopflow output (%v)", dir, err)
	}
	man, err := schemas.ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if len(man.Shards) == 0 {
		return nil, fmt.Errorf("%s/manifest.json lists no shards", dir)
	}
	d := &Dataset{Dir: dir, Manifest: man}
	for i, sh := range man.Shards {
		p := joinURL(dir, sh.Path)
		data, err := filesystem.Read(ctx, fs, p)
		if err != nil {
			return nil, fmt.Errorf("read shard %s: %w", p, err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != sh.SHA256 {
			return nil, fmt.Errorf("shard %s: sha256 %s does not match the manifest's %s: the file changed after preprocessing; rerun it",
				p, got, sh.SHA256)
		}
		meta, rows, err := schemas.DecodeShard(data) // Arrow or Parquet, by magic
		if err != nil {
			return nil, fmt.Errorf("decode shard %s: %w", p, err)
		}
		if int64(len(rows)) != sh.Rows {
			return nil, fmt.Errorf("shard %s: %d rows, manifest says %d", p, len(rows), sh.Rows)
		}
		if i == 0 {
			d.Meta = meta
		} else if meta != d.Meta {
			return nil, fmt.Errorf("shard %s: metadata %+v differs from the first shard's %+v", p, meta, d.Meta)
		}
		for _, r := range rows {
			if len(r.PromptIDs) == 0 || len(r.ChosenIDs) == 0 || len(r.RejectedIDs) == 0 {
				return nil, fmt.Errorf("shard %s: pair %s has an empty prompt or completion", p, r.ID)
			}
			if d.Scored() && (len(r.RefChosenLogps) != len(r.ChosenIDs) || len(r.RefRejectedLogps) != len(r.RejectedIDs)) {
				return nil, fmt.Errorf("shard %s: pair %s has %d/%d reference log-probs for %d/%d completion tokens",
					p, r.ID, len(r.RefChosenLogps), len(r.RefRejectedLogps), len(r.ChosenIDs), len(r.RejectedIDs))
			}
			switch r.Split {
			case schemas.SplitEval:
				d.Eval = append(d.Eval, r)
			default:
				d.Train = append(d.Train, r)
			}
		}
	}
	if len(d.Train) == 0 {
		return nil, fmt.Errorf("%s: no train rows", dir)
	}
	return d, nil
}

// Sampler walks the train rows in a fresh random order every epoch. The order
// of epoch e is a pure function of (seed, e), so the position (Epoch, Pos) is
// the whole sampler state: a resumed run rebuilds it exactly.
type Sampler struct {
	N     int
	Seed  uint64
	Epoch int // completed passes over the data
	Pos   int // rows of the current epoch already handed out

	perm      []int
	permEpoch int
}

// NewSampler starts at epoch 0, position 0.
func NewSampler(n int, seed uint64) *Sampler { return &Sampler{N: n, Seed: seed, permEpoch: -1} }

// Next returns the indices of the next batch of size b, crossing into the next
// epoch (and its new order) when the current one runs out, so every batch is full.
func (s *Sampler) Next(b int) []int {
	out := make([]int, 0, b)
	for len(out) < b {
		if s.Pos >= s.N {
			s.Epoch++
			s.Pos = 0
		}
		if s.permEpoch != s.Epoch || s.perm == nil {
			// PCG seeded with (seed, epoch): independent streams per epoch,
			// and no state to carry between epochs.
			s.perm = rand.New(rand.NewPCG(s.Seed, uint64(s.Epoch))).Perm(s.N)
			s.permEpoch = s.Epoch
		}
		out = append(out, s.perm[s.Pos])
		s.Pos++
	}
	return out
}

// EpochFloat is the fractional number of epochs done, as TRL logs "epoch".
func (s *Sampler) EpochFloat() float64 { return float64(s.Epoch) + float64(s.Pos)/float64(s.N) }

// Example is one pair as the model sees it: truncated to the context, with the
// reference log-prob sums over the tokens that were kept.
type Example struct {
	Row                    *schemas.Row
	Chosen, Rejected       gpt.Sequence
	RefChosen, RefRejected float64 // 0 unless the rows were scored
}

// Fit truncates a prompt and completion so the model's input,
// len(prompt)+len(completion)−1 tokens, fits in nPositions. The prompt loses
// tokens from its start (the end is what the completion follows); the
// completion is cut at its end only if even a one-token prompt leaves it no room.
func Fit(prompt, completion []int32, nPositions int) gpt.Sequence {
	if maxC := nPositions; len(completion) > maxC {
		completion = completion[:maxC]
	}
	if room := nPositions + 1 - len(completion); len(prompt) > room {
		prompt = prompt[len(prompt)-room:]
	}
	return gpt.Sequence{Prompt: prompt, Completion: completion}
}

// MakeExample converts a row into the two sequences the model scores
// (prompt→chosen and prompt→rejected), each fitted to nPositions.
func MakeExample(r *schemas.Row, nPositions int) Example {
	e := Example{Row: r,
		Chosen:   Fit(r.PromptIDs, r.ChosenIDs, nPositions),
		Rejected: Fit(r.PromptIDs, r.RejectedIDs, nPositions),
	}
	sum := func(v []float32, n int) float64 {
		var s float64
		for _, x := range v[:min(n, len(v))] {
			s += float64(x)
		}
		return s
	}
	e.RefChosen = sum(r.RefChosenLogps, len(e.Chosen.Completion))
	e.RefRejected = sum(r.RefRejectedLogps, len(e.Rejected.Completion))
	return e
}
