// Package tokenize turns text into token ids and back for dpopflow's preprocessing
// and training stages, without any Beam dependency, so it can be tested and
// benchmarked on its own.
//
// Three families are supported behind one interface:
//
//   - "byte": ids 0–255 are UTF-8 bytes, 256 is EOS <|endoftext|>, 257 is PAD.
//   - OpenAI tiktoken encodings ("gpt2" = "r50k_base", "p50k_base", "cl100k_base",
//     "o200k_base"), with ranks from the offline tiktoken-go loader.
//   - Hugging Face tokenizer.json files for byte-level BPE (GPT-2, Llama-3, Qwen style).
//
// Special-token text found in user data (for example a literal "<|endoftext|>"
// inside a prompt) is always encoded as ordinary text, never as the special token:
// a preference record must not be able to end its own completion early or forge
// a chat turn. The only way to get a special id into a sequence is to append it
// (EOS(), PAD()) in code. Chat templates (see ChatTemplate) render their markers as
// text, so those markers are also encoded as ordinary text by these tokenizers;
// that is consistent between the reference and policy models, which is what
// matters for DPO/DPOP.
//
// All tokenizers are safe for concurrent use, and New caches loaded encodings
// per spec, so calling it from every Beam worker's Setup is cheap.
package tokenize

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
)

// Tokenizer encodes text to ids and decodes ids to text.
type Tokenizer interface {
	// Name identifies the tokenizer; New(Name()) returns an equivalent one
	// (for tokenizer.json it is "tokenizer.json:<sha256 prefix>", recorded for provenance).
	Name() string
	// Encode tokenizes text. Special-token text is encoded as ordinary text. Never panics.
	Encode(text string) []int32
	// Decode is the exact inverse of Encode: Decode(Encode(x)) == x for valid UTF-8 x.
	// Special ids decode to their text; ids outside the vocabulary are skipped.
	Decode(ids []int32) string
	// EOS is the end-of-text id appended to completions.
	EOS() int32
	// PAD is the padding id (EOS for BPE tokenizers without a pad token).
	PAD() int32
	// VocabSize is the largest id plus one, specials included: the embedding table size.
	VocabSize() int
}

// Specs accepted by New besides a tokenizer.json path.
const (
	SpecByte   = "byte"
	SpecGPT2   = "gpt2"
	SpecR50K   = "r50k_base"
	SpecP50K   = "p50k_base"
	SpecCL100K = "cl100k_base"
	SpecO200K  = "o200k_base"
)

type cacheEntry struct {
	once sync.Once
	tok  Tokenizer
	err  error
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*cacheEntry{}
)

// New returns the tokenizer for spec: "byte", "gpt2" (the r50k_base encoding),
// "r50k_base", "p50k_base", "cl100k_base", "o200k_base", or a path to a Hugging Face
// tokenizer.json (or to a directory holding one). A spec of the form
// "tokenizer.json:<hash>" (a Name from an earlier run) is refused with an error
// asking for the path, since the hash alone cannot locate the file.
//
// Loaded tokenizers are cached per spec for the life of the process, so repeated
// calls are cheap and return the same value. A tokenizer.json edited on disk after
// its first load is not re-read.
func New(spec string) (Tokenizer, error) {
	key := spec
	if isBuiltin(spec) == "" && spec != SpecByte {
		if strings.HasPrefix(spec, hfNamePrefix) {
			return nil, fmt.Errorf("tokenizer %q: a tokenizer.json is named by its hash; pass the path to the file instead", spec)
		}
		if spec == "" {
			return nil, fmt.Errorf("tokenizer: empty spec (want byte, gpt2, r50k_base, p50k_base, cl100k_base, o200k_base or a tokenizer.json path)")
		}
		if abs, err := filepath.Abs(spec); err == nil {
			key = abs
		}
	}
	cacheMu.Lock()
	e, ok := cache[key]
	if !ok {
		e = &cacheEntry{}
		cache[key] = e
	}
	cacheMu.Unlock()
	e.once.Do(func() { e.tok, e.err = load(spec) })
	return e.tok, e.err
}

func load(spec string) (Tokenizer, error) {
	if spec == SpecByte {
		return Byte{}, nil
	}
	if enc := isBuiltin(spec); enc != "" {
		return newTiktoken(spec, enc)
	}
	return LoadTokenizerJSON(spec)
}

// isBuiltin maps a spec to its tiktoken encoding name, or "" if it is not one.
func isBuiltin(spec string) string {
	switch spec {
	case SpecGPT2, SpecR50K:
		return SpecR50K
	case SpecP50K, SpecCL100K, SpecO200K:
		return spec
	}
	return ""
}
