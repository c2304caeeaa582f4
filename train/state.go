package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dpopflow/dpopflow/train/gpt"
)

// TrainerState is trainer_state.json, saved beside each checkpoint's weights
// (Hugging Face's file name): everything besides weights and optimizer moments
// that a resumed run needs to continue exactly where the saved one was.
type TrainerState struct {
	GlobalStep int     `json:"global_step"`
	MaxSteps   int     `json:"max_steps"`
	Epoch      float64 `json:"epoch"`
	// The sampler's position; with the seed it fixes every later batch.
	SamplerSeed  uint64 `json:"sampler_seed"`
	SamplerEpoch int    `json:"sampler_epoch"`
	SamplerPos   int    `json:"sampler_pos"`

	WeightsSHA256  string `json:"weights_sha256"`
	RefModelSHA256 string `json:"ref_model_sha256,omitempty"`
	// DataSHA256 identifies the training data (Dataset.Fingerprint): the
	// sampler position means nothing on other data.
	DataSHA256 string `json:"data_sha256"`
	Config     Config `json:"config"`
}

const (
	stateFile     = "trainer_state.json"
	optimizerFile = "optimizer.safetensors"
	metricsFile   = "metrics.jsonl"
)

func checkpointDir(output string, step int) string {
	return filepath.Join(output, "checkpoint-"+strconv.Itoa(step))
}

// saveCheckpoint writes output/checkpoint-N atomically: weights (via
// gpt.Model.Save), optimizer moments and trainer_state.json go to a temporary
// directory that is renamed into place only when complete, so a kill at any
// moment leaves either no checkpoint-N or a whole one.
func saveCheckpoint(output string, policy *gpt.Model, opt *Adam, st TrainerState) (string, error) {
	final := checkpointDir(output, st.GlobalStep)
	tmp := filepath.Join(output, fmt.Sprintf(".checkpoint-%d.partial", st.GlobalStep))
	os.RemoveAll(tmp) // a leftover from a run killed mid-save
	if err := policy.Save(tmp); err != nil {
		return "", fmt.Errorf("save checkpoint %d: %w", st.GlobalStep, err)
	}
	if err := opt.Save(filepath.Join(tmp, optimizerFile)); err != nil {
		return "", fmt.Errorf("save checkpoint %d: %w", st.GlobalStep, err)
	}
	sj, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", fmt.Errorf("save checkpoint %d: encode trainer state: %w", st.GlobalStep, err)
	}
	if err := writeFileAtomic(filepath.Join(tmp, stateFile), sj); err != nil {
		return "", fmt.Errorf("save checkpoint %d: %w", st.GlobalStep, err)
	}
	if err := os.RemoveAll(final); err != nil {
		return "", fmt.Errorf("save checkpoint %d: replace old %s: %w", st.GlobalStep, final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("save checkpoint %d: %w", st.GlobalStep, err)
	}
	if d, err := os.Open(output); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return final, nil
}

// latestCheckpoint finds the complete checkpoint with the highest step in
// output (0, "" when there is none). Partial saves never carry the
// checkpoint-N name, so any checkpoint-N with a trainer_state.json is whole.
func latestCheckpoint(output string) (int, string, error) {
	entries, err := os.ReadDir(output)
	if os.IsNotExist(err) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("look for checkpoints in %s: %w", output, err)
	}
	var steps []int
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !ok || !e.IsDir() {
			continue
		}
		step, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(output, e.Name(), stateFile)); err == nil {
			steps = append(steps, step)
		}
	}
	if len(steps) == 0 {
		return 0, "", nil
	}
	sort.Ints(steps)
	s := steps[len(steps)-1]
	return s, checkpointDir(output, s), nil
}

func loadTrainerState(dir string) (TrainerState, error) {
	var st TrainerState
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("resume: parse %s/%s: %w", dir, stateFile, err)
	}
	return st, nil
}

// sameTrajectory lists the settings that differ between a saved run and this
// one among those that change the loss trajectory; resuming across such a
// change would silently mix two experiments. MaxSteps may change (to extend a run).
func sameTrajectory(saved, now Config) error {
	type traj struct {
		Loss                       string
		Beta, Lambda, LearningRate float64
		MinLRRatio, WeightDecay    float64
		BatchSize, Accum, Warmup   int
		WarmupRatio, MaxGradNorm   float64
		Seed                       uint64
		ComputeRef                 bool
	}
	get := func(c Config) traj {
		return traj{c.Loss, c.Beta, c.Lambda, c.LearningRate, c.MinLRRatio, c.WeightDecay,
			c.BatchSize, c.GradientAccumulationSteps, c.WarmupSteps, c.WarmupRatio, c.MaxGradNorm, c.Seed, c.ComputeRef}
	}
	if a, b := get(saved), get(now); a != b {
		return fmt.Errorf("the checkpoint was trained with %+v, this run asks for %+v; use a new --output or the same settings", a, b)
	}
	return nil
}

// metricsLog appends JSON lines to output/metrics.jsonl.
type metricsLog struct {
	f *os.File
	w *bufio.Writer
}

// openMetrics opens metrics.jsonl for appending; on resume it first drops the
// lines logged after the checkpoint (by the run that was killed), so the file
// reads as one uninterrupted run.
func openMetrics(output string, keepUpTo int, resumed bool) (*metricsLog, error) {
	path := filepath.Join(output, metricsFile)
	if resumed {
		old, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		var kept bytes.Buffer
		for _, line := range bytes.SplitAfter(old, []byte("\n")) {
			var row struct {
				Step *int `json:"step"`
			}
			if json.Unmarshal(line, &row) == nil && row.Step != nil && *row.Step <= keepUpTo && bytes.HasSuffix(line, []byte("\n")) {
				kept.Write(line)
			}
		}
		if err := writeFileAtomic(path, kept.Bytes()); err != nil {
			return nil, err
		}
	} else if err := os.WriteFile(path, nil, 0o644); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &metricsLog{f: f, w: bufio.NewWriter(f)}, nil
}

// write logs one row; non-finite values become null (JSON has no NaN).
func (l *metricsLog) write(row map[string]float64) error {
	out := make(map[string]any, len(row))
	for k, v := range row {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out[k] = nil
		} else {
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode metrics: %w", err)
	}
	l.w.Write(append(b, '\n'))
	return l.w.Flush()
}

func (l *metricsLog) Close() error {
	l.w.Flush()
	return l.f.Close()
}

// ReadMetrics reads a metrics.jsonl file (for reports and tests).
func ReadMetrics(path string) ([]map[string]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	var rows []map[string]float64
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var raw map[string]*float64
		if err := json.Unmarshal(line, &raw); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		row := map[string]float64{}
		for k, v := range raw {
			if v == nil {
				row[k] = math.NaN()
			} else {
				row[k] = *v
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
