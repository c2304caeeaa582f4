package tokenize

import (
	"math/rand"
	"strings"
	"testing"
)

// TestMergeHeapMatchesScan runs both merge loops on long random pieces, for a
// tiktoken core (byte-string ranks) and a tokenizer.json core (pair ranks).
func TestMergeHeapMatchesScan(t *testing.T) {
	gpt2 := mustNew(t, "gpt2").(*tiktokenTokenizer).core
	tiny := mustNew(t, "testdata/tiny").(*hfTokenizer).core
	r := rand.New(rand.NewSource(3))
	alphabets := []string{"ab", "abc ", "the cat sat on a mat", "=-_*", "0123456789", "héllo wörld"}
	for _, core := range []*bpe{gpt2, tiny} {
		for trial := 0; trial < 60; trial++ {
			alpha := alphabets[trial%len(alphabets)]
			var sb strings.Builder
			n := 1 + r.Intn(600)
			for sb.Len() < n {
				i := r.Intn(len(alpha))
				sb.WriteByte(alpha[i])
			}
			piece := sb.String()
			if got, want := core.mergeHeap(piece), core.mergeSmall(piece); !equalIDs(got, want) {
				t.Fatalf("piece %q: heap %v, scan %v", piece, got, want)
			}
		}
	}
}

// TestLongRunsRoundTrip encodes long runs without a break (handled by the
// heap) and checks them against tiktoken-go.
func TestLongRunsRoundTrip(t *testing.T) {
	tok := mustNew(t, "gpt2")
	for _, s := range []string{strings.Repeat("a", 5000), strings.Repeat("=", 3000), strings.Repeat("ab1", 2000), strings.Repeat(" ", 4000) + "x"} {
		want := refEncode(t, "r50k_base", s)
		if got := tok.Encode(s); !equalIDs(got, want) {
			t.Errorf("run of %q x%d: %d ids, tiktoken-go %d", s[:3], len(s), len(got), len(want))
		}
		checkRoundTrip(t, tok, s)
	}
}

// BenchmarkEncodeLongRun is a 64 KB "word" (think base64): the heap keeps it
// near-linear where the rescan would be quadratic.
func BenchmarkEncodeLongRun(b *testing.B) {
	tok := mustNew(b, "gpt2")
	r := rand.New(rand.NewSource(1))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = letters[r.Intn(len(letters))]
	}
	text := string(buf)
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		tok.Encode(text)
	}
}
