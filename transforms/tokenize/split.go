package tokenize

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written pre-tokenizers for the regexes every supported vocabulary uses.
// regexp2 (a backtracking engine, needed for the (?!\S) lookahead) spends most
// of the encode time; these scanners give the same pieces several times faster.
// They decide character classes with Go's unicode tables, as regexp2 does
// (\s is unicode.IsSpace, \p{L} unicode.L, ...), and tests compare them piece by
// piece with the regexes on random and exhaustive inputs. Any other pattern
// falls back to regexSplitter.

type patternKind uint8

const (
	kindGPT2   patternKind = iota // r50k, p50k, Hugging Face ByteLevel(use_regex)
	kindCL100K                    // cl100k, Llama-3 (digits 3), Qwen2 (digits 1)
	kindO200K
)

const (
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// scanSplitter is the hand-written equivalent of one of the known patterns.
type scanSplitter struct {
	kind      patternKind
	maxDigits int // \p{N}{1,maxDigits} for the cl100k family
}

// newSplitter returns the fastest splitter equivalent to pattern.
func newSplitter(pattern string) (splitter, error) {
	switch pattern {
	case gpt2Pattern:
		return scanSplitter{kind: kindGPT2}, nil
	case cl100kPattern:
		return scanSplitter{kind: kindCL100K, maxDigits: 3}, nil
	case qwen2Pattern:
		return scanSplitter{kind: kindCL100K, maxDigits: 1}, nil
	case tiktokenSpecs[SpecO200K].pattern:
		return scanSplitter{kind: kindO200K, maxDigits: 3}, nil
	}
	return newRegexSplitter(pattern)
}

func (s scanSplitter) pieces(text string, emit func(string)) {
	for i := 0; i < len(text); {
		var end int
		switch s.kind {
		case kindGPT2:
			end = nextGPT2(text, i)
		case kindCL100K:
			end = nextCL100K(text, i, s.maxDigits)
		default:
			end = nextO200K(text, i)
		}
		emit(text[i:end])
		i = end
	}
}

// Character classes. cA is o200k's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and cB its
// [\p{Ll}\p{Lm}\p{Lo}\p{M}].
const (
	cSpace uint8 = 1 << iota
	cL
	cN
	cA
	cB
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		t[r] = slowClass(r)
	}
	return t
}()

func slowClass(r rune) uint8 {
	var c uint8
	switch {
	case unicode.IsSpace(r):
		c = cSpace
	case unicode.IsLetter(r):
		c = cL
		switch {
		case unicode.Is(unicode.Ll, r):
			c |= cB
		case unicode.Is(unicode.Lu, r), unicode.Is(unicode.Lt, r):
			c |= cA
		default: // Lm, Lo
			c |= cA | cB
		}
	case unicode.IsNumber(r):
		c = cN
	case unicode.Is(unicode.M, r):
		c = cA | cB
	}
	return c
}

// at decodes the rune at i; an invalid byte reads as U+FFFD of width 1, as
// []rune conversion (and so regexp2) sees it. w is 0 at the end of text.
func at(t string, i int) (r rune, c uint8, w int) {
	if i >= len(t) {
		return -1, 0, 0
	}
	if b := t[i]; b < utf8.RuneSelf {
		return rune(b), asciiClass[b], 1
	}
	r, w = utf8.DecodeRuneInString(t[i:])
	return r, slowClass(r), w
}

func isOther(c uint8) bool { return c&(cSpace|cL|cN) == 0 }

// runOf returns the end of the run of runes whose class has any bit of mask.
func runOf(t string, i int, mask uint8) int {
	for i < len(t) {
		_, c, w := at(t, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

// runOther returns the end of the run of [^\s\p{L}\p{N}] from i.
func runOther(t string, i int) int {
	for i < len(t) {
		_, c, w := at(t, i)
		if !isOther(c) {
			break
		}
		i += w
	}
	return i
}

// runBytes returns the end of the run of bytes in set from i.
func runBytes(t string, i int, set string) int {
	for i < len(t) {
		found := false
		for j := 0; j < len(set); j++ {
			if t[i] == set[j] {
				found = true
				break
			}
		}
		if !found {
			break
		}
		i++
	}
	return i
}

// contraction returns the length of s|t|re|ve|m|ll|d at t[j:] (after an
// apostrophe), lower-casing runes first when fold is set, or 0 for none.
func contraction(t string, j int, fold bool) int {
	lower := func(r rune) rune {
		if fold {
			return unicode.ToLower(r)
		}
		return r
	}
	r1, _, w1 := at(t, j)
	if w1 == 0 {
		return 0
	}
	switch lower(r1) {
	case 's', 't', 'm', 'd':
		return w1
	case 'r', 'v':
		if r2, _, w2 := at(t, j+w1); w2 > 0 && lower(r2) == 'e' {
			return w1 + w2
		}
	case 'l':
		if r2, _, w2 := at(t, j+w1); w2 > 0 && lower(r2) == 'l' {
			return w1 + w2
		}
	}
	return 0
}

// spaceTail matches \s+(?!\S)|\s+ at a whitespace rune i: a run of whitespace
// leaves its last rune to the word after it, unless it ends the text or is
// that one rune.
func spaceTail(t string, i int) int {
	j, last := i, i
	for j < len(t) {
		_, c, w := at(t, j)
		if c&cSpace == 0 {
			break
		}
		last = j
		j += w
	}
	if j == len(t) || last == i {
		return j
	}
	return last
}

// newlineTail matches \s*[\r\n]+ at whitespace rune i: the run up to and
// including its last \r or \n. It returns -1 if the run has neither.
func newlineTail(t string, i int) int {
	end := -1
	for j := i; j < len(t); {
		r, c, w := at(t, j)
		if c&cSpace == 0 {
			break
		}
		if r == '\r' || r == '\n' {
			end = j + 1
		}
		j += w
	}
	return end
}

// nextGPT2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func nextGPT2(t string, i int) int {
	r0, c0, w0 := at(t, i)
	if r0 == '\'' {
		if n := contraction(t, i+1, false); n > 0 {
			return i + 1 + n
		}
	}
	if r0 == ' ' {
		_, c1, w1 := at(t, i+w0)
		switch {
		case w1 == 0:
		case c1&cL != 0:
			return runOf(t, i+w0, cL)
		case c1&cN != 0:
			return runOf(t, i+w0, cN)
		case isOther(c1):
			return runOther(t, i+w0)
		}
	}
	switch {
	case c0&cL != 0:
		return runOf(t, i, cL)
	case c0&cN != 0:
		return runOf(t, i, cN)
	case isOther(c0):
		return runOther(t, i)
	}
	return spaceTail(t, i)
}

// digits matches \p{N}{1,max} at i, or returns -1.
func digits(t string, i, max int) int {
	j := i
	for n := 0; n < max; n++ {
		_, c, w := at(t, j)
		if c&cN == 0 {
			break
		}
		j += w
	}
	if j == i {
		return -1
	}
	return j
}

// nextCL100K: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func nextCL100K(t string, i, maxDigits int) int {
	r0, c0, w0 := at(t, i)
	if r0 == '\'' {
		if n := contraction(t, i+1, true); n > 0 {
			return i + 1 + n
		}
	}
	if c0&cL != 0 {
		return runOf(t, i, cL)
	}
	_, c1, w1 := at(t, i+w0)
	if c0&cN == 0 && r0 != '\r' && r0 != '\n' && w1 > 0 && c1&cL != 0 {
		return runOf(t, i+w0, cL)
	}
	if c0&cN != 0 {
		return digits(t, i, maxDigits)
	}
	if r0 == ' ' && w1 > 0 && isOther(c1) {
		return runBytes(t, runOther(t, i+w0), "\r\n")
	}
	if isOther(c0) {
		return runBytes(t, runOther(t, i), "\r\n")
	}
	if e := newlineTail(t, i); e >= 0 {
		return e
	}
	return spaceTail(t, i)
}

// o200kUpperLower matches [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
// at s, backtracking as the regex does, or returns -1.
func o200kUpperLower(t string, s int) int {
	a, lastB, lastW := s, -1, 0
	for a < len(t) {
		_, c, w := at(t, a)
		if c&cA == 0 {
			break
		}
		if c&cB != 0 {
			lastB, lastW = a, w
		}
		a += w
	}
	if _, c, w := at(t, a); w > 0 && c&cB != 0 {
		return runOf(t, a, cB)
	}
	if lastB >= 0 {
		return lastB + lastW
	}
	return -1
}

// o200kUpperFirst matches [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*
// at s, or returns -1.
func o200kUpperFirst(t string, s int) int {
	a := runOf(t, s, cA)
	if a == s {
		return -1
	}
	return runOf(t, a, cB)
}

// nextO200K follows o200k's pattern: two letter-word alternatives (upper-then-
// lower and all-upper, each with an optional leading non-letter and an
// optional contraction), then \p{N}{1,3}, ?[^\s\p{L}\p{N}]+[\r\n/]*, and the
// cl100k whitespace rules.
func nextO200K(t string, i int) int {
	r0, c0, w0 := at(t, i)
	// Where the word may start: after an optional [^\r\n\p{L}\p{N}] (tried
	// first, the ? being greedy), else at i.
	starts := [2]int{i, -1}
	if c0&(cL|cN) == 0 && r0 != '\r' && r0 != '\n' {
		starts = [2]int{i + w0, i}
	}
	for _, word := range [2]func(string, int) int{o200kUpperLower, o200kUpperFirst} {
		for _, s := range starts {
			if s < 0 {
				continue
			}
			if e := word(t, s); e >= 0 {
				if r, _, w := at(t, e); r == '\'' {
					if n := contraction(t, e+w, true); n > 0 {
						e += w + n
					}
				}
				return e
			}
		}
	}
	if c0&cN != 0 {
		return digits(t, i, 3)
	}
	if _, c1, w1 := at(t, i+w0); r0 == ' ' && w1 > 0 && isOther(c1) {
		return runBytes(t, runOther(t, i+w0), "\r\n/")
	}
	if isOther(c0) {
		return runBytes(t, runOther(t, i), "\r\n/")
	}
	if e := newlineTail(t, i); e >= 0 {
		return e
	}
	return spaceTail(t, i)
}
