package tokenize

import (
	"fmt"
	"strings"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// tiktokenSpec is what defines an OpenAI encoding besides its rank file. The
// patterns and special ids are tiktoken-go v0.1.8's (tests compare every id
// against it); only <|endoftext|> matters here, since specials are never
// matched in text and EOS is the one we append.
type tiktokenSpec struct {
	pattern string
	eos     int32
	special map[string]int32
}

const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

var tiktokenSpecs = map[string]tiktokenSpec{
	SpecR50K: {
		pattern: gpt2Pattern,
		eos:     50256,
		special: map[string]int32{endOfText: 50256},
	},
	SpecP50K: {
		pattern: gpt2Pattern,
		eos:     50256,
		special: map[string]int32{endOfText: 50256},
	},
	SpecCL100K: {
		pattern: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
		eos:     100257,
		special: map[string]int32{
			endOfText:         100257,
			"<|fim_prefix|>":  100258,
			"<|fim_middle|>":  100259,
			"<|fim_suffix|>":  100260,
			"<|endofprompt|>": 100276,
		},
	},
	SpecO200K: {
		pattern: strings.Join([]string{
			`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
			`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
			`\p{N}{1,3}`,
			` ?[^\s\p{L}\p{N}]+[\r\n/]*`,
			`\s*[\r\n]+`,
			`\s+(?!\S)`,
			`\s+`,
		}, "|"),
		eos:     199999,
		special: map[string]int32{endOfText: 199999, "<|endofprompt|>": 200018},
	},
}

// tiktokenTokenizer is an OpenAI BPE encoding.
type tiktokenTokenizer struct {
	name  string
	eos   int32
	vocab int
	core  *bpe
}

// newTiktoken loads encoding enc (ranks embedded in tiktoken-go-loader, so no
// network) and names it spec.
func newTiktoken(spec, enc string) (*tiktokenTokenizer, error) {
	def, ok := tiktokenSpecs[enc]
	if !ok {
		return nil, fmt.Errorf("tokenizer %q: unknown tiktoken encoding %q", spec, enc)
	}
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(enc + ".tiktoken")
	if err != nil {
		return nil, fmt.Errorf("tokenizer %q: load %s ranks: %w", spec, enc, err)
	}
	split, err := newSplitter(def.pattern)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %q: compile pre-tokenizer regex: %w", spec, err)
	}
	maxID := int32(-1)
	for _, r := range ranks {
		maxID = max(maxID, int32(r))
	}
	for _, id := range def.special {
		maxID = max(maxID, id)
	}
	core := &bpe{split: split, ranks: ranks, decoder: make([][]byte, maxID+1)}
	for tok, r := range ranks {
		core.decoder[r] = []byte(tok)
	}
	for tok, id := range def.special {
		core.decoder[id] = []byte(tok)
	}
	for c := 0; c < 256; c++ {
		r, ok := ranks[string([]byte{byte(c)})]
		if !ok {
			return nil, fmt.Errorf("tokenizer %q: %s has no token for byte %#02x", spec, enc, c)
		}
		core.byteID[c] = int32(r)
	}
	return &tiktokenTokenizer{name: spec, eos: def.eos, vocab: int(maxID) + 1, core: core}, nil
}

func (t *tiktokenTokenizer) Name() string               { return t.name }
func (t *tiktokenTokenizer) Encode(text string) []int32 { return t.core.encode(text) }
func (t *tiktokenTokenizer) Decode(ids []int32) string  { return t.core.decode(ids) }
func (t *tiktokenTokenizer) EOS() int32                 { return t.eos }
func (t *tiktokenTokenizer) PAD() int32                 { return t.eos }
func (t *tiktokenTokenizer) VocabSize() int             { return t.vocab }
