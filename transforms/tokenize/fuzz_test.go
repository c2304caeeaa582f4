package tokenize

import (
	"testing"
	"unicode/utf8"
)

// FuzzRoundTrip checks, for every kind of tokenizer, that Encode never panics,
// that Decode(Encode(x)) == x (for these tokenizers even when x is not valid
// UTF-8, since pieces are cut on the original bytes), that no special id comes
// out of user text, and that tiktoken encodings agree with tiktoken-go on valid
// UTF-8. The seed corpus runs in every `go test`.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	for _, s := range []string{"\xff", "a\xc3", "\xe2\x82", "x\x00y", "'S'T'RE", " \n \n", "\u200d\u200d", "1٣੫"} {
		f.Add(s)
	}
	toks := []Tokenizer{mustNew(f, "byte"), mustNew(f, "gpt2"), mustNew(f, "cl100k_base"), mustNew(f, "testdata/tiny")}
	refs := map[string]string{"gpt2": "r50k_base", "cl100k_base": "cl100k_base"}
	for _, enc := range refs {
		refEncoding(f, enc) // load before fuzzing, not inside the first input
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, tok := range toks {
			ids := tok.Encode(text)
			if got := tok.Decode(ids); got != text {
				t.Fatalf("%s: Decode(Encode(%q)) = %q", tok.Name(), text, got)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() || id == tok.EOS() || id == tok.PAD() {
					t.Fatalf("%s: Encode(%q) gave id %d", tok.Name(), text, id)
				}
			}
			if enc, ok := refs[tok.Name()]; ok && utf8.ValidString(text) {
				if want := refEncode(t, enc, text); !equalIDs(ids, want) {
					t.Fatalf("%s: Encode(%q) = %v, tiktoken-go says %v", tok.Name(), text, ids, want)
				}
			}
		}
	})
}
