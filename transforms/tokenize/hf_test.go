package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// tiktokenMerges recovers Hugging Face merges from tiktoken ranks, the way
// tiktoken-to-tokenizer.json converters do: each multi-byte token of rank r is
// what byte-pair merging its bytes with only ranks below r leaves as exactly two
// parts. Written independently of the package's merge loop on purpose.
func tiktokenMerges(t testing.TB, ranks map[string]int, maxRank int) [][2]string {
	type tokRank struct {
		tok  string
		rank int
	}
	var toks []tokRank
	for tok, r := range ranks {
		if r < maxRank && len(tok) > 1 {
			toks = append(toks, tokRank{tok, r})
		}
	}
	sort.Slice(toks, func(i, j int) bool { return toks[i].rank < toks[j].rank })
	merges := make([][2]string, 0, len(toks))
	for _, tr := range toks {
		parts := []string{}
		for i := 0; i < len(tr.tok); i++ {
			parts = append(parts, tr.tok[i:i+1])
		}
		for len(parts) > 2 {
			best, bestRank := -1, tr.rank
			for i := 0; i+1 < len(parts); i++ {
				if r, ok := ranks[parts[i]+parts[i+1]]; ok && r < bestRank {
					best, bestRank = i, r
				}
			}
			if best < 0 {
				break
			}
			parts = append(parts[:best], append([]string{parts[best] + parts[best+1]}, parts[best+2:]...)...)
		}
		if len(parts) != 2 {
			t.Fatalf("token %q (rank %d) does not reduce to one merge: %q", tr.tok, tr.rank, parts)
		}
		merges = append(merges, [2]string{parts[0], parts[1]})
	}
	return merges
}

func toUnicode(b string) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		sb.WriteRune(byteToUnicode[b[i]])
	}
	return sb.String()
}

type fixtureOpts struct {
	enc          string
	maxRank      int
	pairMerges   bool   // write merges as [a, b] instead of "a b"
	splitRegex   string // Llama-3 style: Sequence[Split(regex), ByteLevel(use_regex=false)]
	ignoreMerges bool
	added        map[string]int
	config       map[string]any // tokenizer_config.json, if any
}

// writeFixture writes a tokenizer.json (and tokenizer_config.json) built from a
// tiktoken encoding's ranks below maxRank, and returns the reference tiktoken-go
// encoder restricted to the same ranks and the directory.
func writeFixture(t testing.TB, o fixtureOpts) (*tiktoken.Tiktoken, string) {
	t.Helper()
	all, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(o.enc + ".tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	ranks := map[string]int{}
	vocab := map[string]int{}
	for tok, r := range all {
		if r < o.maxRank {
			ranks[tok] = r
			vocab[toUnicode(tok)] = r
		}
	}
	var merges []any
	for _, m := range tiktokenMerges(t, ranks, o.maxRank) {
		a, b := toUnicode(m[0]), toUnicode(m[1])
		if o.pairMerges {
			merges = append(merges, []string{a, b})
		} else {
			merges = append(merges, a+" "+b)
		}
	}
	var added []map[string]any
	for content, id := range o.added {
		added = append(added, map[string]any{"id": id, "content": content, "special": true,
			"single_word": false, "lstrip": false, "rstrip": false, "normalized": false})
	}
	var pre any = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	pattern := gpt2Pattern
	if o.splitRegex != "" {
		pattern = o.splitRegex
		pre = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": o.splitRegex}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
	}
	doc := map[string]any{
		"version":        "1.0",
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  pre,
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel"},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil,
			"continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false,
			"byte_fallback": false, "ignore_merges": o.ignoreMerges, "vocab": vocab, "merges": merges},
	}
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "tokenizer.json"), doc)
	if o.config != nil {
		writeJSON(t, filepath.Join(dir, "tokenizer_config.json"), o.config)
	}
	specials := map[string]int{}
	for k, v := range o.added {
		specials[k] = v
	}
	core, err := tiktoken.NewCoreBPE(ranks, specials, pattern)
	if err != nil {
		t.Fatal(err)
	}
	return tiktoken.NewTiktoken(core, &tiktoken.Encoding{Name: "fixture", PatStr: pattern, MergeableRanks: ranks, SpecialTokens: specials}, nil), dir
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTokenizerJSONGPT2 loads a GPT-2 tokenizer.json made from the whole r50k
// vocabulary ("a b" merges, ByteLevel regex pre-tokenizer) and expects exactly
// tiktoken-go's r50k ids.
func TestTokenizerJSONGPT2(t *testing.T) {
	ref, dir := writeFixture(t, fixtureOpts{enc: "r50k_base", maxRank: 1 << 30, added: map[string]int{"<|endoftext|>": 50256}})
	tok := mustNew(t, filepath.Join(dir, "tokenizer.json"))
	if !strings.HasPrefix(tok.Name(), "tokenizer.json:") || len(tok.Name()) != len("tokenizer.json:")+12 {
		t.Errorf("Name = %q", tok.Name())
	}
	if tok.EOS() != 50256 || tok.PAD() != 50256 || tok.VocabSize() != 50257 {
		t.Errorf("EOS %d PAD %d vocab %d", tok.EOS(), tok.PAD(), tok.VocabSize())
	}
	for _, s := range samples {
		want := toInt32(ref.EncodeOrdinary(s))
		if got := tok.Encode(s); !equalIDs(got, want) {
			t.Errorf("Encode(%q)\n got %v\nwant %v", s, got, want)
		}
		checkRoundTrip(t, tok, s)
	}
	if got := tok.Encode("hello world"); !equalIDs(got, []int32{31373, 995}) {
		t.Errorf("hello world = %v", got)
	}
}

// llama3Pattern is Llama-3's (and cl100k's) pre-tokenizer regex; it needs the
// (?!\S) lookahead that Go's regexp lacks.
const llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// TestTokenizerJSONLlama3Style loads a Llama-3-shaped file: Split regex then
// ByteLevel without regex, [a, b] merges, ignore_merges, specials after the
// vocabulary and a tokenizer_config.json naming EOS. The vocabulary is cl100k's
// first 20000 ranks, so the reference is tiktoken-go restricted to those ranks.
func TestTokenizerJSONLlama3Style(t *testing.T) {
	const n = 20000
	ref, dir := writeFixture(t, fixtureOpts{
		enc: "cl100k_base", maxRank: n, pairMerges: true, splitRegex: llama3Pattern, ignoreMerges: true,
		added: map[string]int{"<|begin_of_text|>": n, "<|end_of_text|>": n + 1, "<|eot_id|>": n + 9},
		config: map[string]any{
			"eos_token":     map[string]any{"content": "<|eot_id|>"},
			"pad_token":     "<|end_of_text|>",
			"chat_template": "{{ '<|begin_of_text|>' }}{% for m in messages %}<|start_header_id|>...",
		},
	})
	tok := mustNew(t, dir) // a directory works too
	if tok.EOS() != n+9 || tok.PAD() != n+1 || tok.VocabSize() != n+10 {
		t.Errorf("EOS %d PAD %d vocab %d", tok.EOS(), tok.PAD(), tok.VocabSize())
	}
	for _, s := range samples {
		want := toInt32(ref.EncodeOrdinary(s))
		if got := tok.Encode(s); !equalIDs(got, want) {
			t.Errorf("Encode(%q)\n got %v\nwant %v", s, got, want)
		}
		checkRoundTrip(t, tok, s)
	}
	if s := tok.Decode([]int32{n, n + 9}); s != "<|begin_of_text|><|eot_id|>" {
		t.Errorf("Decode(specials) = %q", s)
	}
	tmpl, ok := ChatTemplateFor(filepath.Join(dir, "tokenizer.json"))
	if !ok || tmpl.Name() != "llama3" {
		t.Errorf("ChatTemplateFor = %v, %v; want llama3", tmpl, ok)
	}
}

// TestTokenizerJSONHandMade uses the committed testdata/tiny fixture, whose
// merges are chosen so that Hugging Face's pair-rank rule and tiktoken's
// "any concatenation in the vocabulary" rule disagree: "b c" merges before
// "a b", and there is no "a bc" merge, so "abc" must stay [a, bc] even though
// "abc" is in the vocabulary.
func TestTokenizerJSONHandMade(t *testing.T) {
	tok := mustNew(t, "testdata/tiny/tokenizer.json")
	a, c, sp := int32('a'-'!'), int32('c'-'!'), int32(220) // GPT-2 byte ids: "!" is 0, space (Ġ) is 220
	cases := []struct {
		text string
		want []int32
	}{
		{"abc", []int32{a, 259}},     // b c → bc (rank 0); no "a bc" merge
		{"ab", []int32{256}},         // a b → ab
		{"abcc", []int32{a, 259, c}}, // leftmost on ties is irrelevant here: bc once
		{" ab", []int32{sp, 256}},    // no "Ġ ab" merge
		{" the", []int32{258}},       // Ġ t → Ġt, h e → he, Ġt he → Ġthe
		{"<|endoftext|>", []int32{27, 91, 68, 77, 67, 78, 69, 83, 68, 87, 83, 91, 29}}, // specials are text
	}
	for _, tc := range cases {
		if got := tok.Encode(tc.text); !equalIDs(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if tok.EOS() != 262 || tok.PAD() != 262 || tok.VocabSize() != 263 {
		t.Errorf("EOS %d PAD %d vocab %d", tok.EOS(), tok.PAD(), tok.VocabSize())
	}
	for _, s := range samples {
		checkRoundTrip(t, tok, s)
	}
	tmpl, ok := ChatTemplateFor("testdata/tiny")
	if !ok || tmpl.Name() != "chatml" {
		t.Errorf("ChatTemplateFor(tiny) = %v, %v; want chatml", tmpl, ok)
	}
}

// minimalTokenizerJSON is the smallest byte-level BPE document: 256 byte
// tokens, no merges, </s> as the only special.
func minimalTokenizerJSON() map[string]any {
	vocab := map[string]int{}
	for i := 0; i < 256; i++ {
		vocab[string(byteToUnicode[i])] = i
	}
	return map[string]any{
		"added_tokens":  []any{map[string]any{"id": 256, "content": "</s>", "special": true}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": []any{}},
	}
}

// TestTokenizerJSONNFC: with Qwen's NFC normalizer, a decomposed é encodes as
// the composed one.
func TestTokenizerJSONNFC(t *testing.T) {
	doc := minimalTokenizerJSON()
	doc["normalizer"] = map[string]any{"type": "NFC"}
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "tokenizer.json"), doc)
	tok, err := LoadTokenizerJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(tok.Encode("cafe\u0301")); got != "café" {
		t.Errorf("NFC round trip of a decomposed é = %q", got)
	}
	checkRoundTrip(t, tok, "naïve café")
}

func TestTokenizerJSONErrors(t *testing.T) {
	base := minimalTokenizerJSON
	ok := base()
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "tokenizer.json"), ok)
	tok, err := LoadTokenizerJSON(dir)
	if err != nil {
		t.Fatalf("minimal byte-level file: %v", err)
	}
	if tok.EOS() != 256 {
		t.Errorf("EOS from </s> = %d", tok.EOS())
	}
	mutations := map[string]func(m map[string]any){
		"wordpiece": func(m map[string]any) { m["model"].(map[string]any)["type"] = "WordPiece" },
		"prefixspace": func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true}
		},
		"nopretok":  func(m map[string]any) { delete(m, "pre_tokenizer") },
		"badmerge":  func(m map[string]any) { m["model"].(map[string]any)["merges"] = []any{"a zz"} },
		"nobyte":    func(m map[string]any) { delete(m["model"].(map[string]any)["vocab"].(map[string]int), "a") },
		"noeos":     func(m map[string]any) { delete(m, "added_tokens") },
		"lowercase": func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} },
	}
	for name, mutate := range mutations {
		m := base()
		mutate(m)
		d := t.TempDir()
		writeJSON(t, filepath.Join(d, "tokenizer.json"), m)
		if _, err := LoadTokenizerJSON(d); err == nil {
			t.Errorf("%s: loaded, want an error", name)
		}
	}
	if _, err := LoadTokenizerJSON(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}
