// Package gpt is a decoder-only transformer with exactly GPT-2's architecture
// (learned positions, pre-LayerNorm blocks, tanh-GELU, causal attention, output
// head tied to the token embedding), built on gorgonia, with checkpoints stored
// as Hugging Face GPT-2 directories (config.json + model.safetensors).
//
// The model is trained through two calls: CompletionLogps (forward only) and
// ForwardBackward (forward, a caller-supplied loss on the per-token log-probs,
// and backward into Param.Grad). Both take Sequences: a prompt and a
// completion; only completion tokens are scored. The input fed to the network is
// prompt ++ completion[:len-1], and completion[j] is scored at the position
// that precedes it, so the prompt must hold at least one token and the whole
// input (len(prompt)+len(completion)-1 tokens) must fit in NPositions; callers
// truncate upstream, and longer sequences are rejected with an error.
//
// Internally each padded batch shape gets its own gorgonia expression graph and
// tape machine (cached; lengths are bucketed to multiples of 16); every layer
// (embedding gather, layer norm, Conv1D, causal attention on the fused qkv,
// gelu_new, and the tied head's log-softmax gathered at the target token) is
// a custom gorgonia op with a hand-written backward op, in float32 for
// training and float64 for the gradient checks. gorgonia provides the graph,
// the symbolic chain rule and the tape machine. On amd64 with AVX2+FMA the
// float32 matrix products and exp run in Go assembly (no cgo); elsewhere, or
// with -tags purego, they fall back to gonum's pure-Go BLAS.
package gpt

// Config mirrors the fields of a Hugging Face GPT-2 config.json that the
// architecture depends on.
type Config struct {
	VocabSize        int     `json:"vocab_size"`
	NPositions       int     `json:"n_positions"`
	NEmbd            int     `json:"n_embd"`
	NLayer           int     `json:"n_layer"`
	NHead            int     `json:"n_head"`
	LayerNormEpsilon float64 `json:"layer_norm_epsilon"`
}

// DefaultConfig is the small model the project trains by default (d=32,
// 2 layers, 4 heads, context 128): big enough to show DPO's failure mode on
// the embedded data, small enough to train in minutes on two cores.
func DefaultConfig(vocabSize int) Config {
	return Config{
		VocabSize:        vocabSize,
		NPositions:       128,
		NEmbd:            32,
		NLayer:           2,
		NHead:            4,
		LayerNormEpsilon: 1e-5,
	}
}

// Param is one named weight tensor in GPT-2's naming (e.g. "h.0.attn.c_attn.weight"),
// row-major, with its gradient buffer of the same length.
type Param struct {
	Name  string
	Shape []int
	Data  []float32
	Grad  []float32

	// data64/grad64 shadow Data/Grad when the model runs in float64 (used by
	// the gradient checks, where float32 finite differences would be noise).
	data64 []float64
	grad64 []float64
}

// Size is the number of elements.
func (p *Param) Size() int { return len(p.Data) }

// Sequence is one example: prompt ids followed by completion ids. Log-probs are
// computed for every completion token given everything before it.
type Sequence struct {
	Prompt     []int32
	Completion []int32
}
