package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

const hfNamePrefix = "tokenizer.json:"

// hfTokenizer is a Hugging Face byte-level BPE tokenizer loaded from tokenizer.json.
type hfTokenizer struct {
	name     string
	eos, pad int32
	vocab    int
	nfc      bool
	core     *bpe
}

func (t *hfTokenizer) Name() string { return t.name }

// Encode tokenizes text. With an NFC normalizer (Qwen), text that is not in NFC
// is normalized first, so only NFC text round-trips exactly.
func (t *hfTokenizer) Encode(text string) []int32 {
	if t.nfc {
		text = norm.NFC.String(text)
	}
	return t.core.encode(text)
}
func (t *hfTokenizer) Decode(ids []int32) string { return t.core.decode(ids) }
func (t *hfTokenizer) EOS() int32                { return t.eos }
func (t *hfTokenizer) PAD() int32                { return t.pad }
func (t *hfTokenizer) VocabSize() int            { return t.vocab }

// The parts of tokenizer.json we read.
type hfFile struct {
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        struct {
		Type                    string            `json:"type"`
		Vocab                   map[string]int32  `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		IgnoreMerges            bool              `json:"ignore_merges"`
	} `json:"model"`
}

type hfComponent struct {
	Type           string          `json:"type"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Pattern        json.RawMessage `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	Individual     bool            `json:"individual_digits"`
	PreTokenizers  []hfComponent   `json:"pretokenizers"`
	Normalizers    []hfComponent   `json:"normalizers"`
}

// LoadTokenizerJSON loads a Hugging Face tokenizer.json for byte-level BPE
// (GPT-2, Llama-3, Qwen style); path may also be the directory holding it.
//
// Supported: model.type "BPE" with vocab and merges ("a b" strings or [a, b]
// pairs), ignore_merges; pre-tokenizers ByteLevel, Split (Isolated, not
// inverted) and Digits, alone or in a Sequence; normalizer none or NFC. Added
// tokens get their ids and decode to their text, but are never matched in input
// text (see the package comment). A post-processor (e.g. Llama-3 prepending
// <|begin_of_text|>) is not applied: the chat template writes such markers.
//
// EOS is tokenizer_config.json's eos_token when that file sits beside, else the
// first of <|endoftext|>, <|end_of_text|>, </s>, <|im_end|> present. PAD is the
// config's pad_token, else EOS.
func LoadTokenizerJSON(path string) (Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer.json: %w", err)
	}
	t, err := parseTokenizerJSON(raw, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

func parseTokenizerJSON(raw []byte, dir string) (*hfTokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	m := f.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("model.type %q: only byte-level BPE is supported", m.Type)
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") ||
		(m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return nil, fmt.Errorf("model uses subword prefixes/suffixes: not a byte-level BPE")
	}
	if len(m.Vocab) == 0 {
		return nil, fmt.Errorf("model.vocab is empty")
	}
	nfc, err := parseNormalizer(f.Normalizer)
	if err != nil {
		return nil, err
	}
	split, err := parsePreTokenizer(f.PreTokenizer)
	if err != nil {
		return nil, err
	}

	core := &bpe{split: split, pairs: make(map[uint64]merge, len(m.Merges))}
	maxID := int32(-1)
	for _, id := range m.Vocab {
		maxID = max(maxID, id)
	}
	for _, a := range f.AddedTokens {
		maxID = max(maxID, a.ID)
	}
	if maxID >= 1<<24 {
		return nil, fmt.Errorf("token id %d is implausibly large", maxID)
	}
	core.decoder = make([][]byte, maxID+1)
	added := map[int32]bool{}
	addedByContent := map[string]int32{}
	for _, a := range f.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		}
		core.decoder[a.ID] = []byte(a.Content)
		added[a.ID] = true
		addedByContent[a.Content] = a.ID
	}
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab token %q has negative id %d", tok, id)
		}
		if added[id] {
			continue // decodes to its added-token text
		}
		b, ok := unicodeToBytes(tok)
		if !ok {
			return nil, fmt.Errorf("vocab token %q is not in GPT-2's byte-to-unicode alphabet: not a byte-level BPE", tok)
		}
		core.decoder[id] = b
	}
	for c := 0; c < 256; c++ {
		id, ok := m.Vocab[string(byteToUnicode[c])]
		if !ok {
			return nil, fmt.Errorf("vocab has no token for byte %#02x: not a byte-level BPE", c)
		}
		core.byteID[c] = id
	}
	if m.IgnoreMerges {
		core.whole = make(map[string]int32, len(m.Vocab))
		for _, id := range m.Vocab {
			if !added[id] {
				core.whole[string(core.decoder[id])] = id
			}
		}
	}
	for i, rawMerge := range m.Merges {
		a, b, err := parseMerge(rawMerge)
		if err != nil {
			return nil, fmt.Errorf("merges[%d]: %w", i, err)
		}
		la, okA := m.Vocab[a]
		lb, okB := m.Vocab[b]
		id, okM := m.Vocab[a+b]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("merges[%d] %q %q: token not in vocab", i, a, b)
		}
		key := uint64(uint32(la))<<32 | uint64(uint32(lb))
		if _, dup := core.pairs[key]; !dup { // the first (lowest) rank wins
			core.pairs[key] = merge{rank: int32(i), id: id}
		}
	}

	sum := sha256.Sum256(raw)
	t := &hfTokenizer{
		name:  hfNamePrefix + hex.EncodeToString(sum[:])[:12],
		vocab: int(maxID) + 1,
		nfc:   nfc,
		core:  core,
	}
	lookup := func(tok string) (int32, bool) {
		if id, ok := addedByContent[tok]; ok {
			return id, true
		}
		id, ok := m.Vocab[tok]
		return id, ok
	}
	cfgEOS, cfgPAD, err := readSpecialConfig(dir)
	if err != nil {
		return nil, err
	}
	eosFound := false
	if cfgEOS != "" {
		if t.eos, eosFound = lookup(cfgEOS); !eosFound {
			return nil, fmt.Errorf("tokenizer_config.json eos_token %q is not a token", cfgEOS)
		}
	} else {
		for _, cand := range []string{endOfText, "<|end_of_text|>", "</s>", "<|im_end|>"} {
			if t.eos, eosFound = lookup(cand); eosFound {
				break
			}
		}
	}
	if !eosFound {
		return nil, fmt.Errorf("no EOS token: add tokenizer_config.json with eos_token, or an <|endoftext|>-like added token")
	}
	t.pad = t.eos
	if cfgPAD != "" {
		id, ok := lookup(cfgPAD)
		if !ok {
			return nil, fmt.Errorf("tokenizer_config.json pad_token %q is not a token", cfgPAD)
		}
		t.pad = id
	}
	return t, nil
}

// readSpecialConfig returns eos_token and pad_token from tokenizer_config.json
// in dir ("" when absent). Each may be a string or an AddedToken object.
func readSpecialConfig(dir string) (eos, pad string, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if os.IsNotExist(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read tokenizer_config.json: %w", err)
	}
	var cfg struct {
		EOS json.RawMessage `json:"eos_token"`
		PAD json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", "", fmt.Errorf("parse tokenizer_config.json: %w", err)
	}
	tokenText := func(r json.RawMessage) string {
		var s string
		if json.Unmarshal(r, &s) == nil {
			return s
		}
		var obj struct {
			Content string `json:"content"`
		}
		if json.Unmarshal(r, &obj) == nil {
			return obj.Content
		}
		return ""
	}
	return tokenText(cfg.EOS), tokenText(cfg.PAD), nil
}

// parseMerge reads one merge in either of its forms: "a b" or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		a, b, ok := strings.Cut(s, " ")
		if !ok || a == "" || b == "" {
			return "", "", fmt.Errorf("merge %q is not two tokens separated by a space", s)
		}
		return a, b, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("merge %s is neither \"a b\" nor [a, b]", raw)
	}
	return pair[0], pair[1], nil
}

func parseNormalizer(raw json.RawMessage) (nfc bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return false, fmt.Errorf("parse normalizer: %w", err)
	}
	var walk func(c hfComponent) error
	walk = func(c hfComponent) error {
		switch c.Type {
		case "NFC":
			nfc = true
		case "Sequence":
			for _, n := range c.Normalizers {
				if err := walk(n); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("normalizer %q is not supported (only NFC: others break exact round trips)", c.Type)
		}
		return nil
	}
	return nfc, walk(c)
}

func parsePreTokenizer(raw json.RawMessage) (splitter, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("no pre_tokenizer: a byte-level BPE needs ByteLevel")
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("parse pre_tokenizer: %w", err)
	}
	items := []hfComponent{c}
	if c.Type == "Sequence" {
		items = c.PreTokenizers
	}
	var chain chainSplitter
	byteLevel := false
	for _, it := range items {
		switch it.Type {
		case "ByteLevel":
			if it.AddPrefixSpace {
				return nil, fmt.Errorf("pre_tokenizer ByteLevel add_prefix_space=true is not supported: it breaks exact round trips")
			}
			byteLevel = true
			if it.UseRegex == nil || *it.UseRegex {
				s, err := newSplitter(gpt2Pattern)
				if err != nil {
					return nil, err
				}
				chain = append(chain, s)
			}
		case "Split":
			if it.Invert || (it.Behavior != "Isolated" && it.Behavior != "") {
				return nil, fmt.Errorf("pre_tokenizer Split behavior %q invert=%v is not supported (only Isolated)", it.Behavior, it.Invert)
			}
			var pat struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			}
			if err := json.Unmarshal(it.Pattern, &pat); err != nil {
				return nil, fmt.Errorf("parse Split pattern: %w", err)
			}
			var expr string
			switch {
			case pat.Regex != nil:
				expr = *pat.Regex
			case pat.String != nil:
				expr = regexp2.Escape(*pat.String)
			default:
				return nil, fmt.Errorf("pre_tokenizer Split has no Regex or String pattern")
			}
			s, err := newSplitter(expr)
			if err != nil {
				return nil, fmt.Errorf("compile Split regex %q: %w", expr, err)
			}
			chain = append(chain, s)
		case "Digits":
			expr := `[0-9]+`
			if it.Individual {
				expr = `[0-9]`
			}
			s, _ := newRegexSplitter(expr)
			chain = append(chain, s)
		default:
			return nil, fmt.Errorf("pre_tokenizer %q is not supported", it.Type)
		}
	}
	if !byteLevel {
		return nil, fmt.Errorf("pre_tokenizer has no ByteLevel step: not a byte-level BPE")
	}
	if len(chain) == 0 {
		return wholeSplitter{}, nil
	}
	if len(chain) == 1 {
		return chain[0], nil
	}
	return chain, nil
}

// chainSplitter applies splitters in turn, each to the pieces of the one before,
// as a Hugging Face Sequence pre-tokenizer does.
type chainSplitter []splitter

func (c chainSplitter) pieces(text string, emit func(string)) { c.run(0, text, emit) }

func (c chainSplitter) run(i int, text string, emit func(string)) {
	if i == len(c) {
		emit(text)
		return
	}
	c[i].pieces(text, func(p string) { c.run(i+1, p, emit) })
}

// byteToUnicode is GPT-2's reversible map from bytes to printable runes, which
// byte-level vocabularies are written in (space is "Ġ", newline "Ċ").
var byteToUnicode, unicodeToByte = func() ([256]rune, map[rune]byte) {
	var b2u [256]rune
	u2b := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			b2u[b] = rune(b)
		} else {
			b2u[b] = rune(256 + n)
			n++
		}
		u2b[b2u[b]] = byte(b)
	}
	return b2u, u2b
}()

// unicodeToBytes reverses the byte-to-unicode map for one vocabulary token.
func unicodeToBytes(tok string) ([]byte, bool) {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := unicodeToByte[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}
