package tokenize

import "testing"

var tiktokenEncodings = []string{"r50k_base", "p50k_base", "cl100k_base", "o200k_base"}

func TestTiktokenMatchesLibrary(t *testing.T) {
	for _, enc := range tiktokenEncodings {
		t.Run(enc, func(t *testing.T) {
			tok := mustNew(t, enc)
			for _, s := range samples {
				want := refEncode(t, enc, s)
				if got := tok.Encode(s); !equalIDs(got, want) {
					t.Errorf("Encode(%q)\n got %v\nwant %v", s, got, want)
				}
				checkRoundTrip(t, tok, s)
			}
		})
	}
}

func TestTiktokenKnownIDs(t *testing.T) {
	cases := []struct {
		spec, text string
		want       []int32
	}{
		{"gpt2", "hello world", []int32{31373, 995}},
		{"gpt2", "<|endoftext|>", []int32{27, 91, 437, 1659, 5239, 91, 29}},
		{"p50k_base", "    x = 12345", []int32{50258, 2124, 796, 17031, 2231}},
		{"cl100k_base", "hello world", []int32{15339, 1917}},
		{"cl100k_base", "<|endoftext|>", []int32{27, 91, 8862, 728, 428, 91, 29}},
		{"cl100k_base", "日本語", []int32{9080, 22656, 45918, 252}},
		{"o200k_base", "hello world", []int32{24912, 2375}},
		{"o200k_base", "    x = 12345", []int32{271, 1215, 314, 220, 7633, 2548}},
	}
	for _, c := range cases {
		if got := mustNew(t, c.spec).Encode(c.text); !equalIDs(got, c.want) {
			t.Errorf("%s Encode(%q) = %v, want %v", c.spec, c.text, got, c.want)
		}
		// The hard-coded ids are themselves checked against the library.
		if ref := refEncode(t, isBuiltin(c.spec), c.text); !equalIDs(ref, c.want) {
			t.Errorf("tiktoken-go %s Encode(%q) = %v, table says %v", c.spec, c.text, ref, c.want)
		}
	}
}

func TestTiktokenSpecials(t *testing.T) {
	cases := []struct {
		spec  string
		eos   int32
		vocab int
	}{
		{"gpt2", 50256, 50257},
		{"r50k_base", 50256, 50257},
		{"p50k_base", 50256, 50281},
		{"cl100k_base", 100257, 100277},
		{"o200k_base", 199999, 200019},
	}
	for _, c := range cases {
		tok := mustNew(t, c.spec)
		if tok.EOS() != c.eos || tok.PAD() != c.eos || tok.VocabSize() != c.vocab {
			t.Errorf("%s: EOS %d PAD %d vocab %d, want %d %d %d", c.spec, tok.EOS(), tok.PAD(), tok.VocabSize(), c.eos, c.eos, c.vocab)
		}
		if s := tok.Decode([]int32{tok.EOS()}); s != "<|endoftext|>" {
			t.Errorf("%s: Decode(EOS) = %q", c.spec, s)
		}
		ids := tok.Encode("x<|endoftext|>y")
		if len(ids) < 3 {
			t.Errorf("%s: <|endoftext|> in text encoded as %v: too few tokens to be ordinary text", c.spec, ids)
		}
		for _, id := range ids {
			if id == tok.EOS() {
				t.Errorf("%s: <|endoftext|> in user text became the EOS id: %v", c.spec, ids)
			}
		}
	}
}
