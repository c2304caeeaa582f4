package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/dpopflow/dpopflow/train/gpt"
)

// Adam is Kingma & Ba's optimiser with decoupled weight decay (Loshchilov &
// Hutter's AdamW, as PyTorch's torch.optim.AdamW computes it), updating
// gpt.Params in place. It is written here rather than taken from gorgonia
// because gorgonia's AdamW never updates and the model's parameters live in
// plain slices, not in a gorgonia graph.
//
// Weight decay applies only to matrices and embeddings (params of rank ≥ 2),
// never to biases and LayerNorm gains, as nanoGPT does.
type Adam struct {
	Beta1, Beta2, Eps float64
	WeightDecay       float64

	// Step counts updates done so far; bias correction uses Step after increment.
	Step int
	// M and V are the first and second moments, keyed by parameter name.
	M, V map[string][]float32
}

// NewAdam returns Adam with PyTorch's defaults (β1 0.9, β2 0.999, eps 1e-8)
// and zero moments for params.
func NewAdam(params []*gpt.Param, weightDecay float64) *Adam {
	a := &Adam{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay,
		M: map[string][]float32{}, V: map[string][]float32{}}
	for _, p := range params {
		a.M[p.Name] = make([]float32, len(p.Data))
		a.V[p.Name] = make([]float32, len(p.Data))
	}
	return a
}

// Update applies one step at learning rate lr using each param's Grad.
func (a *Adam) Update(params []*gpt.Param, lr float64) error {
	a.Step++
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	for _, p := range params {
		m, v := a.M[p.Name], a.V[p.Name]
		if len(m) != len(p.Data) || len(v) != len(p.Data) {
			return fmt.Errorf("adam: no moments of the right size for %s (%d values, moments %d/%d)",
				p.Name, len(p.Data), len(m), len(v))
		}
		decay := float32(1)
		if a.WeightDecay != 0 && len(p.Shape) >= 2 {
			decay = float32(1 - lr*a.WeightDecay)
		}
		for i, g := range p.Grad {
			m[i] = b1*m[i] + (1-b1)*g
			v[i] = b2*v[i] + (1-b2)*g*g
			// The update in float64: with bc2 near 0 in the first steps the
			// float32 quotient loses digits that the resume test can see.
			mh := float64(m[i]) / bc1
			vh := float64(v[i]) / bc2
			p.Data[i] = p.Data[i]*decay - float32(lr*mh/(math.Sqrt(vh)+a.Eps))
		}
	}
	return nil
}

// LearningRate is the schedule nanoGPT uses: linear warmup over the first
// warmup steps, then cosine decay to minRatio·peak at maxSteps. step counts
// from 0 (the first update), so the first update already has a non-zero rate.
func LearningRate(step, warmup, maxSteps int, peak, minRatio float64) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup+1)
	}
	if step >= maxSteps || maxSteps <= warmup {
		return peak * minRatio
	}
	progress := float64(step-warmup) / float64(maxSteps-warmup)
	coeff := 0.5 * (1 + math.Cos(math.Pi*progress))
	return peak*minRatio + coeff*(peak-peak*minRatio)
}

// ClipGradNorm scales all gradients together so that their global L2 norm is at
// most maxNorm (torch.nn.utils.clip_grad_norm_), and returns the norm before
// clipping. maxNorm ≤ 0 only measures. A NaN or Inf norm is returned unclipped,
// for the caller to stop on.
func ClipGradNorm(params []*gpt.Param, maxNorm float64) float64 {
	var ss float64
	for _, p := range params {
		for _, g := range p.Grad {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 && norm > maxNorm && !math.IsInf(norm, 0) && !math.IsNaN(norm) {
		scale := float32(maxNorm / (norm + 1e-6))
		for _, p := range params {
			for i := range p.Grad {
				p.Grad[i] *= scale
			}
		}
	}
	return norm
}

// ---- optimiser state on disk ----------------------------------------------------
//
// Moments are stored as safetensors (readable by Python's safetensors) with
// names "exp_avg.<param>" and "exp_avg_sq.<param>", PyTorch's names, and the
// step and hyperparameters in the header's __metadata__.

// Save writes the optimiser state to path atomically (temp file + rename).
func (a *Adam) Save(path string) error {
	names := make([]string, 0, len(a.M))
	for n := range a.M {
		names = append(names, n)
	}
	sort.Strings(names)
	type entry struct {
		name string
		data []float32
	}
	var entries []entry
	for _, n := range names {
		entries = append(entries, entry{"exp_avg." + n, a.M[n]}, entry{"exp_avg_sq." + n, a.V[n]})
	}
	header := map[string]any{"__metadata__": map[string]string{
		"step":         strconv.Itoa(a.Step),
		"beta1":        strconv.FormatFloat(a.Beta1, 'g', -1, 64),
		"beta2":        strconv.FormatFloat(a.Beta2, 'g', -1, 64),
		"eps":          strconv.FormatFloat(a.Eps, 'g', -1, 64),
		"weight_decay": strconv.FormatFloat(a.WeightDecay, 'g', -1, 64),
	}}
	off := 0
	for _, e := range entries {
		header[e.name] = map[string]any{"dtype": "F32", "shape": []int{len(e.data)}, "data_offsets": []int{off, off + 4*len(e.data)}}
		off += 4 * len(e.data)
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("encode optimizer state header: %w", err)
	}
	for len(hj)%8 != 0 { // the format pads the header with spaces to 8 bytes
		hj = append(hj, ' ')
	}
	buf := make([]byte, 8, 8+len(hj)+off)
	binary.LittleEndian.PutUint64(buf, uint64(len(hj)))
	buf = append(buf, hj...)
	for _, e := range entries {
		for _, f := range e.data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
		}
	}
	if err := writeFileAtomic(path, buf); err != nil {
		return fmt.Errorf("save optimizer state: %w", err)
	}
	return nil
}

// LoadAdam reads optimiser state written by Save and checks it covers params.
func LoadAdam(path string, params []*gpt.Param) (*Adam, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load optimizer state: %w", err)
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("load optimizer state %s: file too short", path)
	}
	hl := binary.LittleEndian.Uint64(b)
	if hl > uint64(len(b)-8) {
		return nil, fmt.Errorf("load optimizer state %s: header length %d beyond file size %d", path, hl, len(b))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hl], &header); err != nil {
		return nil, fmt.Errorf("load optimizer state %s: header: %w", path, err)
	}
	data := b[8+hl:]
	var meta map[string]string
	if err := json.Unmarshal(header["__metadata__"], &meta); err != nil {
		return nil, fmt.Errorf("load optimizer state %s: metadata: %w", path, err)
	}
	a := &Adam{M: map[string][]float32{}, V: map[string][]float32{}}
	parse := func(k string) float64 {
		v, e := strconv.ParseFloat(meta[k], 64)
		if e != nil && err == nil {
			err = fmt.Errorf("load optimizer state %s: metadata %s=%q: %w", path, k, meta[k], e)
		}
		return v
	}
	a.Step = int(parse("step"))
	a.Beta1, a.Beta2, a.Eps, a.WeightDecay = parse("beta1"), parse("beta2"), parse("eps"), parse("weight_decay")
	if err != nil {
		return nil, err
	}
	read := func(name string, n int) ([]float32, error) {
		var t struct {
			Dtype   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets []int  `json:"data_offsets"`
		}
		raw, ok := header[name]
		if !ok {
			return nil, fmt.Errorf("load optimizer state %s: no tensor %s", path, name)
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, fmt.Errorf("load optimizer state %s: tensor %s: %w", path, name, err)
		}
		if t.Dtype != "F32" || len(t.Offsets) != 2 || t.Offsets[1]-t.Offsets[0] != 4*n || t.Offsets[0] < 0 || t.Offsets[1] > len(data) {
			return nil, fmt.Errorf("load optimizer state %s: tensor %s is not %d float32 values", path, name, n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[t.Offsets[0]+4*i:]))
		}
		return out, nil
	}
	for _, p := range params {
		if a.M[p.Name], err = read("exp_avg."+p.Name, len(p.Data)); err != nil {
			return nil, err
		}
		if a.V[p.Name], err = read("exp_avg_sq."+p.Name, len(p.Data)); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place, so a reader (or a resumed run) never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
