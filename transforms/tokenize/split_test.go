package tokenize

import (
	"math/rand"
	"strings"
	"testing"
)

var knownPatterns = map[string]string{
	"gpt2":   gpt2Pattern,
	"cl100k": cl100kPattern,
	"qwen2":  qwen2Pattern,
	"o200k":  tiktokenSpecs[SpecO200K].pattern,
}

func splitAll(s splitter, text string) []string {
	var out []string
	s.pieces(text, func(p string) { out = append(out, p) })
	return out
}

// checkSplitters compares the hand-written scanners with regexp2 running the
// pattern they replace, piece by piece.
func checkSplitters(t *testing.T, text string) {
	t.Helper()
	for name, pat := range knownPatterns {
		fast, err := newSplitter(pat)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast.(scanSplitter); !ok {
			t.Fatalf("%s: no scanner for the pattern", name)
		}
		slow, err := newRegexSplitter(pat)
		if err != nil {
			t.Fatal(err)
		}
		got, want := splitAll(fast, text), splitAll(slow, text)
		pos := 0
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				from, to := max(0, pos-20), min(len(text), pos+40)
				t.Fatalf("%s: piece %d at byte %d: scanner %q, regex %q (context %q)", name, i, pos, got[i], want[i], text[from:to])
			}
			pos += len(got[i])
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d pieces, regex %d", name, len(got), len(want))
		}
	}
}

// trickyRunes covers every class the patterns distinguish: each letter
// category, marks, number kinds, whitespace kinds, contraction letters in both
// cases, runes whose lower case is ASCII, and an invalid byte.
var trickyRunes = []string{
	"a", "Z", "é", "É", "ǅ", "ʰ", "中", "\u0301", "\u0903", "1", "٣", "Ⅻ", "½",
	" ", " ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\v",
	"'", "s", "S", "t", "T", "r", "R", "e", "E", "v", "V", "l", "L", "d", "D", "m", "M",
	"/", ".", "!", "😀", "\uFFFD", "\xff", "ſ", "\u212a", "İ", "_", "-",
}

func TestScannersMatchRegexRandom(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		n := r.Intn(12)
		for j := 0; j < n; j++ {
			b.WriteString(trickyRunes[r.Intn(len(trickyRunes))])
		}
		b.WriteByte(0) // NUL is "other": a harmless separator the patterns don't special-case
	}
	checkSplitters(t, b.String())
	for _, s := range samples {
		checkSplitters(t, s)
	}
}

// TestScannersMatchRegexAllRunes puts every rune below U+0800, runes with odd
// case mappings, and a stride through the rest of Unicode, in the contexts where its class matters.
func TestScannersMatchRegexAllRunes(t *testing.T) {
	var b strings.Builder
	add := func(r rune) {
		s := string(r)
		for _, ctx := range []string{"'" + s + "e ", "'l" + s + " ", "a" + s + "b ", "A" + s + "a's ", " " + s + s + "\n", "1" + s + "2 ", s + "  x"} {
			b.WriteString(ctx)
		}
	}
	for r := rune(0); r < 0x800; r++ { // Latin, Greek, Cyrillic, Hebrew, Arabic and their marks
		add(r)
	}
	for _, r := range []rune{0x1E9E, 0x2126, 0x212A, 0x212B, 0x2160, 0x2C65, 0xA7AE, 0xFB05, 0xFF21, 0xFF41} {
		add(r) // runes whose case mapping is unusual
	}
	for r := rune(0x800); r < 0x110000; r += 211 {
		add(r)
	}
	checkSplitters(t, b.String())
}

func FuzzSplitters(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Add("ʰA'S\u0301 ǅa's 12345 \r\n\t /x//\n")
	f.Fuzz(func(t *testing.T, text string) {
		checkSplitters(t, text)
	})
}
