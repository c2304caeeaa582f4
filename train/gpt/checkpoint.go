package gpt

// Checkpoints are Hugging Face GPT-2 directories: config.json and
// model.safetensors. The safetensors format is small enough to read and write
// by hand (8-byte little-endian header length, a JSON header mapping names to
// dtype/shape/data_offsets, then the raw little-endian data), which also lets
// Save produce canonical bytes: keys sorted, data in key order, header padded
// to 8 bytes; WeightsSHA256 hashes exactly those bytes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	configFile  = "config.json"
	weightsFile = "model.safetensors"
)

// hfConfig is config.json as Hugging Face writes it for GPT-2.
type hfConfig struct {
	ModelType          string   `json:"model_type"`
	Architectures      []string `json:"architectures,omitempty"`
	VocabSize          int      `json:"vocab_size"`
	NPositions         int      `json:"n_positions"`
	NCtx               int      `json:"n_ctx,omitempty"`
	NEmbd              int      `json:"n_embd"`
	NLayer             int      `json:"n_layer"`
	NHead              int      `json:"n_head"`
	LayerNormEpsilon   float64  `json:"layer_norm_epsilon"`
	ActivationFunction string   `json:"activation_function"`
	TieWordEmbeddings  *bool    `json:"tie_word_embeddings,omitempty"`
	TorchDtype         string   `json:"torch_dtype,omitempty"`
}

func (m *Model) configJSON() []byte {
	tie := true
	c := hfConfig{
		ModelType:          "gpt2",
		Architectures:      []string{"GPT2LMHeadModel"},
		VocabSize:          m.cfg.VocabSize,
		NPositions:         m.cfg.NPositions,
		NCtx:               m.cfg.NPositions,
		NEmbd:              m.cfg.NEmbd,
		NLayer:             m.cfg.NLayer,
		NHead:              m.cfg.NHead,
		LayerNormEpsilon:   m.cfg.LayerNormEpsilon,
		ActivationFunction: "gelu_new",
		TieWordEmbeddings:  &tie,
		TorchDtype:         "float32",
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err) // plain struct: cannot fail
	}
	return append(b, '\n')
}

func parseConfig(b []byte) (Config, error) {
	var c hfConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("gpt: parse config.json: %w", err)
	}
	if c.ModelType != "" && c.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("gpt: config.json: model_type %q, want gpt2", c.ModelType)
	}
	if c.ActivationFunction != "" && c.ActivationFunction != "gelu_new" {
		return Config{}, fmt.Errorf("gpt: config.json: activation_function %q is not supported (only gelu_new)", c.ActivationFunction)
	}
	if c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings {
		return Config{}, errors.New("gpt: config.json: tie_word_embeddings false is not supported")
	}
	cfg := Config{VocabSize: c.VocabSize, NPositions: c.NPositions, NEmbd: c.NEmbd, NLayer: c.NLayer, NHead: c.NHead, LayerNormEpsilon: c.LayerNormEpsilon}
	if cfg.NPositions == 0 {
		cfg.NPositions = c.NCtx
	}
	if cfg.LayerNormEpsilon == 0 {
		cfg.LayerNormEpsilon = 1e-5 // GPT2Config's default
	}
	return cfg, nil
}

// safetensorsBytes encodes the weights canonically (float32, sorted keys).
func (m *Model) safetensorsBytes() []byte {
	params := append([]*Param(nil), m.list...)
	sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
	var hdr bytes.Buffer
	hdr.WriteString(`{"__metadata__":{"format":"pt"}`)
	off := 0
	for _, p := range params {
		shape := make([]string, len(p.Shape))
		for i, s := range p.Shape {
			shape[i] = strconv.Itoa(s)
		}
		name, _ := json.Marshal(p.Name)
		fmt.Fprintf(&hdr, `,%s:{"dtype":"F32","shape":[%s],"data_offsets":[%d,%d]}`, name, strings.Join(shape, ","), off, off+4*len(p.Data))
		off += 4 * len(p.Data)
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	out := make([]byte, 8, 8+hdr.Len()+off)
	binary.LittleEndian.PutUint64(out, uint64(hdr.Len()))
	out = append(out, hdr.Bytes()...)
	for _, p := range params {
		for _, v := range p.Data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out
}

// WeightsSHA256 is the hex sha256 of the model.safetensors bytes Save writes;
// the same weights always give the same digest.
func (m *Model) WeightsSHA256() string {
	sum := sha256.Sum256(m.safetensorsBytes())
	return hex.EncodeToString(sum[:])
}

// saveHook, when set by a test, runs after each file is written into the
// temporary directory; an error aborts Save there.
var saveHook func(file string) error

// Save writes the checkpoint directory dir (config.json + model.safetensors).
// It is atomic: the files are written and fsynced in a temporary directory
// beside dir, which is then renamed to dir, so dir is either the old
// checkpoint or the complete new one, never half written. An existing dir is
// replaced.
func (m *Model) Save(dir string) (err error) {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("gpt: save %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("gpt: save %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, f := range []struct {
		name string
		data []byte
	}{{configFile, m.configJSON()}, {weightsFile, m.safetensorsBytes()}} {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data); err != nil {
			return fmt.Errorf("gpt: save %s: %w", dir, err)
		}
		if saveHook != nil {
			if err := saveHook(f.name); err != nil {
				return fmt.Errorf("gpt: save %s: %w", dir, err)
			}
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("gpt: save %s: %w", dir, err)
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("gpt: save %s: %w", dir, err)
	}
	// rename(2) cannot replace a non-empty directory: move the old one aside
	// first and delete it once the new one is in place.
	var old string
	if _, statErr := os.Stat(dir); statErr == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("gpt: save %s: move old checkpoint aside: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("gpt: save %s: %w", dir, err)
	}
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("gpt: save %s: %w", dir, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads a checkpoint directory written by Save or by Hugging Face
// (GPT2LMHeadModel.save_pretrained with safetensors).
func Load(dir string) (*Model, error) {
	cfg, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("gpt: load %s: %w", dir, err)
	}
	st, err := os.ReadFile(filepath.Join(dir, weightsFile))
	if err != nil {
		return nil, fmt.Errorf("gpt: load %s: %w", dir, err)
	}
	m, err := LoadBytes(cfg, st)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return m, nil
}

// LoadBytes builds a model from the contents of config.json and
// model.safetensors, for callers that read files through another filesystem
// (Beam's gs:// or memfs://). Tensor names may carry a "transformer." prefix;
// the attn.bias / attn.masked_bias buffers and lm_head.weight (tied to wte)
// are ignored. F32, F16 and BF16 data are accepted. A missing, unexpected or
// misshapen tensor is an error naming it.
func LoadBytes(configJSON, safetensors []byte) (*Model, error) {
	cfg, err := parseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	m, err := newZero(cfg)
	if err != nil {
		return nil, err
	}
	tensors, err := parseSafetensors(safetensors)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Param{}
	for _, p := range m.list {
		byName[p.Name] = p
	}
	seen := map[string]bool{}
	for _, t := range tensors {
		name := strings.TrimPrefix(t.name, "transformer.")
		if name == "lm_head.weight" || strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") {
			continue
		}
		p, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("gpt: model.safetensors: unexpected tensor %q for a GPT-2 with config %+v", t.name, cfg)
		}
		if !equalShape(t.shape, p.Shape) {
			return nil, fmt.Errorf("gpt: model.safetensors: tensor %q has shape %v, want %v", t.name, t.shape, p.Shape)
		}
		if err := decodeInto(p.Data, t); err != nil {
			return nil, fmt.Errorf("gpt: model.safetensors: tensor %q: %w", t.name, err)
		}
		seen[name] = true
	}
	for _, p := range m.list {
		if !seen[p.Name] {
			return nil, fmt.Errorf("gpt: model.safetensors: missing tensor %q (shape %v)", p.Name, p.Shape)
		}
	}
	return m, nil
}

type stTensor struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

func parseSafetensors(b []byte) ([]stTensor, error) {
	if len(b) < 8 {
		return nil, errors.New("gpt: model.safetensors: file shorter than its 8-byte header length")
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("gpt: model.safetensors: header length %d exceeds file size %d", n, len(b))
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("gpt: model.safetensors: parse header: %w", err)
	}
	data := b[8+n:]
	var out []stTensor
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype       string `json:"dtype"`
			Shape       []int  `json:"shape"`
			DataOffsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("gpt: model.safetensors: tensor %q: %w", name, err)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > len(data) {
			return nil, fmt.Errorf("gpt: model.safetensors: tensor %q: data offsets [%d,%d] outside the %d data bytes", name, lo, hi, len(data))
		}
		out = append(out, stTensor{name: name, dtype: e.Dtype, shape: e.Shape, data: data[lo:hi]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func decodeInto(dst []float32, t stTensor) error {
	size := map[string]int{"F32": 4, "F16": 2, "BF16": 2}[t.dtype]
	if size == 0 {
		return fmt.Errorf("dtype %s is not supported (F32, F16, BF16)", t.dtype)
	}
	if len(t.data) != size*len(dst) {
		return fmt.Errorf("%d data bytes for %d %s values", len(t.data), len(dst), t.dtype)
	}
	for i := range dst {
		switch t.dtype {
		case "F32":
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.data[4*i:]))
		case "BF16":
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.data[2*i:])) << 16)
		case "F16":
			dst[i] = halfToFloat(binary.LittleEndian.Uint16(t.data[2*i:]))
		}
	}
	return nil
}

// halfToFloat converts IEEE 754 binary16 to float32.
func halfToFloat(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(frac, -24))
	case 0x1f:
		if frac == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32(math.Ldexp(1+frac/1024, exp-15))
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
