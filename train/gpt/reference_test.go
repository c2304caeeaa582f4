package gpt

// An independent GPT-2 forward pass for checking the model: plain float64
// loops written from the equations, reading the checkpoint file with its own
// safetensors parser. It shares no code with the package on purpose.

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

type refGPT2 struct {
	d, nHead, nLayer int
	eps              float64
	w                map[string][]float64
}

func loadRef(t *testing.T, dir string) *refGPT2 {
	t.Helper()
	cb, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		NEmbd, NHead, NLayer int
		Eps                  float64 `json:"layer_norm_epsilon"`
	}
	var raw map[string]any
	if err := json.Unmarshal(cb, &raw); err != nil {
		t.Fatal(err)
	}
	cfg.NEmbd, cfg.NHead, cfg.NLayer = int(raw["n_embd"].(float64)), int(raw["n_head"].(float64)), int(raw["n_layer"].(float64))
	cfg.Eps = raw["layer_norm_epsilon"].(float64)
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(b[:8])
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hlen], &hdr); err != nil {
		t.Fatal(err)
	}
	body := b[8+hlen:]
	w := map[string][]float64{}
	for name, msg := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype   string
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &e); err != nil || e.Dtype != "F32" {
			t.Fatalf("tensor %s: %v %s", name, err, e.Dtype)
		}
		seg := body[e.Offsets[0]:e.Offsets[1]]
		v := make([]float64, len(seg)/4)
		for i := range v {
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(seg[4*i:])))
		}
		w[name] = v
	}
	return &refGPT2{d: cfg.NEmbd, nHead: cfg.NHead, nLayer: cfg.NLayer, eps: cfg.Eps, w: w}
}

// refLayerNorm: (x − mean)/√(var + eps)·w + b, per row.
func (r *refGPT2) layerNorm(x [][]float64, prefix string) [][]float64 {
	out := make([][]float64, len(x))
	for i, row := range x {
		mean, vr := 0.0, 0.0
		for _, v := range row {
			mean += v
		}
		mean /= float64(len(row))
		for _, v := range row {
			vr += (v - mean) * (v - mean)
		}
		vr /= float64(len(row))
		out[i] = make([]float64, len(row))
		for j, v := range row {
			out[i][j] = (v-mean)/math.Sqrt(vr+r.eps)*r.w[prefix+".weight"][j] + r.w[prefix+".bias"][j]
		}
	}
	return out
}

// conv1D: y[i][o] = b[o] + Σ_k x[i][k]·W[k][o], W stored [in, out].
func (r *refGPT2) conv1D(x [][]float64, prefix string) [][]float64 {
	W, B := r.w[prefix+".weight"], r.w[prefix+".bias"]
	nOut := len(B)
	out := make([][]float64, len(x))
	for i, row := range x {
		out[i] = make([]float64, nOut)
		for o := 0; o < nOut; o++ {
			s := B[o]
			for k, v := range row {
				s += v * W[k*nOut+o]
			}
			out[i][o] = s
		}
	}
	return out
}

// logps returns log p(completion[j] | prompt, completion[:j]) for each j.
func (r *refGPT2) logps(prompt, completion []int32) []float64 {
	input := append(append([]int32(nil), prompt...), completion[:len(completion)-1]...)
	T, D := len(input), r.d
	hd := D / r.nHead
	x := make([][]float64, T)
	for t, id := range input {
		x[t] = make([]float64, D)
		for j := 0; j < D; j++ {
			x[t][j] = r.w["wte.weight"][int(id)*D+j] + r.w["wpe.weight"][t*D+j]
		}
	}
	for l := 0; l < r.nLayer; l++ {
		p := "h." + string(rune('0'+l)) + "."
		qkv := r.conv1D(r.layerNorm(x, p+"ln_1"), p+"attn.c_attn")
		att := make([][]float64, T)
		for t := range att {
			att[t] = make([]float64, D)
		}
		for h := 0; h < r.nHead; h++ {
			for i := 0; i < T; i++ {
				scores := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					s := 0.0
					for c := 0; c < hd; c++ {
						s += qkv[i][h*hd+c] * qkv[j][D+h*hd+c]
					}
					scores[j] = s / math.Sqrt(float64(hd))
					mx = math.Max(mx, scores[j])
				}
				z := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					z += scores[j]
				}
				for j := range scores {
					for c := 0; c < hd; c++ {
						att[i][h*hd+c] += scores[j] / z * qkv[j][2*D+h*hd+c]
					}
				}
			}
		}
		proj := r.conv1D(att, p+"attn.c_proj")
		for t := range x {
			for j := range x[t] {
				x[t][j] += proj[t][j]
			}
		}
		hid := r.conv1D(r.layerNorm(x, p+"ln_2"), p+"mlp.c_fc")
		for _, row := range hid {
			for j, v := range row {
				row[j] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*math.Pow(v, 3))))
			}
		}
		mo := r.conv1D(hid, p+"mlp.c_proj")
		for t := range x {
			for j := range x[t] {
				x[t][j] += mo[t][j]
			}
		}
	}
	x = r.layerNorm(x, "ln_f")
	wte := r.w["wte.weight"]
	V := len(wte) / D
	out := make([]float64, len(completion))
	for j, target := range completion {
		t := len(prompt) - 1 + j
		logits := make([]float64, V)
		for v := 0; v < V; v++ {
			for c := 0; c < D; c++ {
				logits[v] += x[t][c] * wte[v*D+c]
			}
		}
		mx := math.Inf(-1)
		for _, l := range logits {
			mx = math.Max(mx, l)
		}
		z := 0.0
		for _, l := range logits {
			z += math.Exp(l - mx)
		}
		out[j] = logits[target] - mx - math.Log(z)
	}
	return out
}

// TestMatchesIndependentReference saves a randomly initialised model (with
// weights scaled up so that attention and GELU are far from linear), reloads
// the file with the reference's own reader, and compares per-token log-probs.
func TestMatchesIndependentReference(t *testing.T) {
	for _, cfg := range []Config{
		{VocabSize: 50, NPositions: 40, NEmbd: 16, NLayer: 2, NHead: 4, LayerNormEpsilon: 1e-5},  // head_dim 4
		{VocabSize: 258, NPositions: 40, NEmbd: 32, NLayer: 2, NHead: 4, LayerNormEpsilon: 1e-5}, // the default shape, head_dim 8
		{VocabSize: 37, NPositions: 21, NEmbd: 48, NLayer: 1, NHead: 3, LayerNormEpsilon: 1e-3},  // head_dim 16, odd lengths
	} {
		checkAgainstReference(t, cfg)
	}
}

func checkAgainstReference(t *testing.T, cfg Config) {
	m, err := New(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	for _, p := range m.Params() {
		for i := range p.Data {
			p.Data[i] += float32(rng.NormFloat64() * 0.3) // also makes LN weights/biases non-trivial
		}
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	ref := loadRef(t, dir)
	seqs := randomSeqs(rng, 6, cfg.VocabSize, cfg.NPositions)
	seqs = append(seqs, Sequence{Prompt: make([]int32, cfg.NPositions/2), Completion: make([]int32, cfg.NPositions-cfg.NPositions/2+1)}) // fills the context
	got, err := m.CompletionLogps(seqs)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i, s := range seqs {
		want := ref.logps(s.Prompt, s.Completion)
		for j := range want {
			diff := math.Abs(float64(got[i][j]) - want[j])
			worst = math.Max(worst, diff)
			if diff > 1e-4 {
				t.Errorf("%+v: seq %d token %d: model %.6f, reference %.6f", cfg, i, j, got[i][j], want[j])
			}
		}
	}
	t.Logf("d=%d heads=%d: largest |model − reference| = %.2g", cfg.NEmbd, cfg.NHead, worst)
}

// randomSeqs makes n sequences with 1..maxLen/2 prompt and completion tokens.
func randomSeqs(rng *rand.Rand, n, vocab, maxLen int) []Sequence {
	out := make([]Sequence, n)
	for i := range out {
		p := make([]int32, 1+rng.Intn(maxLen/2))
		c := make([]int32, 1+rng.Intn(maxLen/2))
		for j := range p {
			p[j] = int32(rng.Intn(vocab))
		}
		for j := range c {
			c[j] = int32(rng.Intn(vocab))
		}
		out[i] = Sequence{Prompt: p, Completion: c}
	}
	return out
}
