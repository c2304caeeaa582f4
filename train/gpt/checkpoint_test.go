package gpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	m := perturbed(t, tinyConfig(), 21)
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Config() != m.Config() {
		t.Fatalf("config %+v, want %+v", l.Config(), m.Config())
	}
	for i, p := range m.Params() {
		q := l.Params()[i]
		if q.Name != p.Name || !bytes.Equal(f32bytes(q.Data), f32bytes(p.Data)) {
			t.Fatalf("%s differs after Save/Load", p.Name)
		}
	}
	if l.WeightsSHA256() != m.WeightsSHA256() {
		t.Fatal("WeightsSHA256 changed after Save/Load")
	}
	file, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if got := sha256hex(file); got != m.WeightsSHA256() {
		t.Fatalf("WeightsSHA256 %s is not the sha256 of the file (%s)", m.WeightsSHA256(), got)
	}
	seqs := randomSeqs(rand.New(rand.NewSource(1)), 5, 13, 14)
	a, _ := m.CompletionLogps(seqs)
	b, _ := l.CompletionLogps(seqs)
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatalf("log-probs differ after Save/Load: %g vs %g", a[i][j], b[i][j])
			}
		}
	}
	// config.json is what Hugging Face expects for GPT-2.
	var cfg map[string]any
	cb, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(cb, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"model_type": "gpt2", "activation_function": "gelu_new", "tie_word_embeddings": true,
		"n_ctx": 20.0, "n_positions": 20.0, "vocab_size": 13.0, "n_embd": 8.0, "n_layer": 2.0, "n_head": 2.0, "layer_norm_epsilon": 1e-5} {
		if cfg[k] != want {
			t.Errorf("config.json %s = %v, want %v", k, cfg[k], want)
		}
	}
	// Saving over an existing checkpoint replaces it.
	m.Params()[3].Data[0] += 1
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	if l, err = Load(dir); err != nil || l.WeightsSHA256() != m.WeightsSHA256() {
		t.Fatalf("overwrite: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("leftovers beside the checkpoint: %v", entries)
	}
}

func f32bytes(x []float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, x)
	return b.Bytes()
}

// writeST writes a safetensors file by hand, as PyTorch/HF would (with
// whatever names and dtypes the test wants).
func writeST(tensors map[string][]float32, shapes map[string][]int) []byte {
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data bytes.Buffer
	for name, v := range tensors {
		off := data.Len()
		binary.Write(&data, binary.LittleEndian, v)
		hdr[name] = map[string]any{"dtype": "F32", "shape": shapes[name], "data_offsets": []int{off, data.Len()}}
	}
	h, _ := json.Marshal(hdr)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data.Bytes()...)
}

// TestLoadHuggingFaceNames: a checkpoint as GPT2LMHeadModel saves it
// (transformer. prefix, attn.bias / masked_bias buffers, lm_head.weight)
// loads, and gives the same log-probs.
func TestLoadHuggingFaceNames(t *testing.T) {
	m := perturbed(t, tinyConfig(), 22)
	tensors, shapes := map[string][]float32{}, map[string][]int{}
	for _, p := range m.Params() {
		tensors["transformer."+p.Name], shapes["transformer."+p.Name] = p.Data, p.Shape
	}
	for i := 0; i < 2; i++ {
		name := "transformer.h." + string(rune('0'+i)) + ".attn."
		tensors[name+"bias"], shapes[name+"bias"] = make([]float32, 400), []int{1, 1, 20, 20}
		tensors[name+"masked_bias"], shapes[name+"masked_bias"] = []float32{-1e4}, []int{}
	}
	tensors["lm_head.weight"], shapes["lm_head.weight"] = m.Params()[0].Data, m.Params()[0].Shape
	cfg := `{"model_type":"gpt2","vocab_size":13,"n_ctx":20,"n_positions":20,"n_embd":8,"n_layer":2,"n_head":2,"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],"resid_pdrop":0.1}`
	l, err := LoadBytes([]byte(cfg), writeST(tensors, shapes))
	if err != nil {
		t.Fatal(err)
	}
	if l.WeightsSHA256() != m.WeightsSHA256() {
		t.Fatal("weights differ after loading HF names")
	}
	// Missing tensor: a clear error naming it.
	delete(tensors, "transformer.h.1.mlp.c_fc.bias")
	if _, err := LoadBytes([]byte(cfg), writeST(tensors, shapes)); err == nil || !strings.Contains(err.Error(), `missing tensor "h.1.mlp.c_fc.bias"`) {
		t.Fatalf("err = %v, want missing h.1.mlp.c_fc.bias", err)
	}
	tensors["transformer.h.1.mlp.c_fc.bias"] = make([]float32, 31)
	if _, err := LoadBytes([]byte(cfg), writeST(tensors, shapes)); err == nil || !strings.Contains(err.Error(), `"transformer.h.1.mlp.c_fc.bias"`) {
		t.Fatalf("err = %v, want a shape error naming the tensor", err)
	}
}

// TestSaveIsAtomic: a Save that fails half way leaves no directory that looks
// like a checkpoint, and keeps an existing checkpoint intact.
func TestSaveIsAtomic(t *testing.T) {
	m := perturbed(t, tinyConfig(), 23)
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	boom := errors.New("disk full")
	saveHook = func(file string) error {
		if file == "model.safetensors" {
			return boom
		}
		return nil
	}
	defer func() { saveHook = nil }()
	if err := m.Save(dir); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("failed Save left %v", entries)
	}
	saveHook = nil
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	before := m.WeightsSHA256()
	m.Params()[0].Data[0] += 1
	saveHook = func(string) error { return boom }
	if err := m.Save(dir); err == nil {
		t.Fatal("want an error")
	}
	l, err := Load(dir)
	if err != nil || l.WeightsSHA256() != before {
		t.Fatalf("the old checkpoint was damaged by a failed Save: %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Fatalf("failed Save left %v", entries)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
