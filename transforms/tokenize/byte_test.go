package tokenize

import "testing"

func TestByte(t *testing.T) {
	tok := mustNew(t, "byte")
	if tok.EOS() != 256 || tok.PAD() != 257 || tok.VocabSize() != 258 || tok.Name() != "byte" {
		t.Fatalf("byte specials: EOS %d PAD %d vocab %d name %q", tok.EOS(), tok.PAD(), tok.VocabSize(), tok.Name())
	}
	got := tok.Encode("hé<|endoftext|>")
	want := []int32{'h', 0xC3, 0xA9, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', '>'}
	if !equalIDs(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if s := tok.Decode([]int32{'o', 'k', 256, 257, -1, 9999}); s != "ok<|endoftext|><|pad|>" {
		t.Errorf("Decode with specials = %q", s)
	}
	for _, s := range samples {
		checkRoundTrip(t, tok, s)
	}
	// Invalid UTF-8 survives byte for byte.
	bad := "a\xff\xfe\xc3"
	if tok.Decode(tok.Encode(bad)) != bad {
		t.Error("invalid UTF-8 did not round-trip")
	}
}
