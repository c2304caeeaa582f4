package tokenize

import (
	"math"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// bpe is the byte-pair-encoding core shared by the tiktoken encodings and
// tokenizer.json files: a regex pre-tokenizer splits text into pieces, and
// each piece's bytes are merged greedily, lowest rank first.
//
// Two rank sources exist because the two file formats define merging
// differently. tiktoken ranks byte strings: two adjacent parts merge when their
// concatenation has a rank. Hugging Face ranks pairs of tokens from its merges
// list. For GPT-2 the two agree; for other vocabularies only the pair form is
// faithful, so tokenizer.json files use it.
type bpe struct {
	split splitter

	// tiktoken mode: byte string → id, which is also its merge rank.
	ranks map[string]int
	// pair mode (tokenizer.json): (left id, right id) → merge.
	pairs map[uint64]merge

	// byteID is the id of each single byte (every byte must have one).
	byteID [256]int32
	// whole, when set, short-cuts a piece that is itself a token (Hugging
	// Face's ignore_merges; tiktoken always does this, with ranks).
	whole map[string]int32

	// decoder maps an id to its bytes; specials hold their text.
	decoder [][]byte

	cache wordCache
}

type merge struct {
	rank int32
	id   int32
}

// splitter cuts text into pieces that are encoded independently. The pieces
// concatenate back to the text: nothing the regex skips is lost.
type splitter interface {
	pieces(text string, emit func(piece string))
}

// regexSplitter splits with a regexp2 pattern (the pre-tokenizer regexes use
// lookahead, which Go's regexp lacks). Text between matches becomes pieces too.
type regexSplitter struct{ re *regexp2.Regexp }

func newRegexSplitter(pattern string) (regexSplitter, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return regexSplitter{}, err
	}
	return regexSplitter{re}, nil
}

func (s regexSplitter) pieces(text string, emit func(string)) {
	// regexp2 reports positions in runes of []rune(text); an invalid byte is one
	// rune (U+FFFD) there and one byte here, so walking with DecodeRuneInString
	// keeps the two in step and invalid UTF-8 still round-trips byte-exactly.
	bytePos, runePos := 0, 0
	advance := func(to int) int {
		for runePos < to && bytePos < len(text) {
			_, w := utf8.DecodeRuneInString(text[bytePos:])
			bytePos += w
			runePos++
		}
		return bytePos
	}
	prev := 0
	m, _ := s.re.FindStringMatch(text)
	for m != nil {
		start := advance(m.Index)
		if start > prev {
			emit(text[prev:start])
		}
		end := advance(m.Index + m.Length)
		if end > start {
			emit(text[start:end])
		}
		prev = end
		m, _ = s.re.FindNextMatch(m)
	}
	if prev < len(text) {
		emit(text[prev:])
	}
}

// wholeSplitter does not split: the whole text is one piece.
type wholeSplitter struct{}

func (wholeSplitter) pieces(text string, emit func(string)) {
	if text != "" {
		emit(text)
	}
}

// wordCache remembers the ids of short pieces. Natural text repeats a few
// thousand words endlessly, so most pieces skip the merge loop. It is bounded so
// a long job over varied text cannot grow it without limit; once full, new
// pieces are simply not cached.
type wordCache struct {
	m sync.Map // string → []int32
	n atomic.Int64
}

const (
	cacheMaxEntries = 1 << 17
	cacheMaxPiece   = 64
)

func (c *wordCache) get(piece string) ([]int32, bool) {
	v, ok := c.m.Load(piece)
	if !ok {
		return nil, false
	}
	return v.([]int32), true
}

func (c *wordCache) put(piece string, ids []int32) {
	if len(piece) > cacheMaxPiece || c.n.Load() >= cacheMaxEntries {
		return
	}
	if _, loaded := c.m.LoadOrStore(piece, ids); !loaded {
		c.n.Add(1)
	}
}

func (b *bpe) encode(text string) []int32 {
	out := make([]int32, 0, len(text)/3+1)
	b.split.pieces(text, func(piece string) {
		out = b.appendPiece(out, piece)
	})
	return out
}

func (b *bpe) appendPiece(out []int32, piece string) []int32 {
	if len(piece) == 1 {
		return append(out, b.byteID[piece[0]])
	}
	if b.ranks != nil {
		if r, ok := b.ranks[piece]; ok {
			return append(out, int32(r))
		}
	} else if b.whole != nil {
		if id, ok := b.whole[piece]; ok {
			return append(out, id)
		}
	}
	if ids, ok := b.cache.get(piece); ok {
		return append(out, ids...)
	}
	ids := b.mergePiece(piece)
	// The cache keeps its own copy of the key: piece points into the caller's text.
	if len(piece) <= cacheMaxPiece {
		b.cache.put(string([]byte(piece)), ids)
	}
	return append(out, ids...)
}

// part is one token of a piece being merged: it starts at byte start, has id,
// and would merge with the next part into next.id at next.rank.
type part struct {
	start int
	id    int32
	next  merge
}

const noMerge = math.MaxInt32

// pairRank says whether two adjacent parts, with ids l and r and together
// spanning piece[s:e], merge, and into what: by the ranks of the joined bytes
// (tiktoken) or of the id pair (tokenizer.json).
func (b *bpe) pairRank(piece string, s, e int, l, r int32) merge {
	if b.pairs != nil {
		if mg, ok := b.pairs[uint64(uint32(l))<<32|uint64(uint32(r))]; ok {
			return mg
		}
		return merge{rank: noMerge}
	}
	if rank, ok := b.ranks[piece[s:e]]; ok {
		return merge{rank: int32(rank), id: int32(rank)}
	}
	return merge{rank: noMerge}
}

// longPiece is where mergePiece switches from rescanning to a heap. Words are
// short and the rescan is fastest for them; a long run without a break (a
// base64 blob, a line of "=====") would be quadratic.
const longPiece = 256

// mergePiece runs the BPE merge loop: repeatedly merge the adjacent pair with
// the lowest rank (the leftmost on ties), as tiktoken and Hugging Face do.
func (b *bpe) mergePiece(piece string) []int32 {
	if len(piece) > longPiece {
		return b.mergeHeap(piece)
	}
	return b.mergeSmall(piece)
}

// mergeSmall rescans the parts after every merge.
func (b *bpe) mergeSmall(piece string) []int32 {
	var buf [32]part
	parts := buf[:0]
	for i := 0; i < len(piece); i++ {
		parts = append(parts, part{start: i, id: b.byteID[piece[i]]})
	}
	end := func(i int) int {
		if i+1 < len(parts) {
			return parts[i+1].start
		}
		return len(piece)
	}
	for i := 0; i+1 < len(parts); i++ {
		parts[i].next = b.pairRank(piece, parts[i].start, end(i+1), parts[i].id, parts[i+1].id)
	}
	if len(parts) > 0 {
		parts[len(parts)-1].next = merge{rank: noMerge}
	}
	for len(parts) > 1 {
		best, bestRank := -1, int32(noMerge)
		for i := 0; i+1 < len(parts); i++ {
			if parts[i].next.rank < bestRank {
				best, bestRank = i, parts[i].next.rank
			}
		}
		if best < 0 {
			break
		}
		parts[best].id = parts[best].next.id
		parts = append(parts[:best+1], parts[best+2:]...)
		if best+1 < len(parts) {
			parts[best].next = b.pairRank(piece, parts[best].start, end(best+1), parts[best].id, parts[best+1].id)
		} else {
			parts[best].next = merge{rank: noMerge}
		}
		if best > 0 {
			parts[best-1].next = b.pairRank(piece, parts[best-1].start, end(best), parts[best-1].id, parts[best].id)
		}
	}
	ids := make([]int32, len(parts))
	for i, p := range parts {
		ids[i] = p.id
	}
	return ids
}

// mergeHeap gives mergePiece's result in O(n log n): parts form a linked list
// (part i starts at byte i), candidate merges wait in a heap ordered by rank
// then position, and an entry is dropped when popped if either of its parts
// changed since it was pushed.
func (b *bpe) mergeHeap(piece string) []int32 {
	n := len(piece)
	id := make([]int32, n)
	next := make([]int, n)
	prev := make([]int, n)
	ver := make([]uint32, n)
	for i := 0; i < n; i++ {
		id[i] = b.byteID[piece[i]]
		next[i], prev[i] = i+1, i-1
	}
	next[n-1] = -1
	var h candHeap
	push := func(i int) {
		j := next[i]
		if j < 0 {
			return
		}
		end := n
		if next[j] >= 0 {
			end = next[j]
		}
		if m := b.pairRank(piece, i, end, id[i], id[j]); m.rank != noMerge {
			h.push(cand{rank: m.rank, pos: i, right: j, id: m.id, verL: ver[i], verR: ver[j]})
		}
	}
	for i := 0; i < n; i++ {
		push(i)
	}
	for len(h) > 0 {
		c := h.pop()
		i, j := c.pos, c.right
		if id[i] < 0 || next[i] != j || ver[i] != c.verL || ver[j] != c.verR {
			continue // stale: a neighbour merged since
		}
		id[i] = c.id
		ver[i]++
		id[j] = -1
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		push(i)
		if prev[i] >= 0 {
			push(prev[i])
		}
	}
	var ids []int32
	for i := 0; i >= 0; i = next[i] {
		ids = append(ids, id[i])
	}
	return ids
}

type cand struct {
	rank, id   int32
	pos, right int
	verL, verR uint32
}

// candHeap is a binary min-heap on (rank, pos), written out to avoid
// container/heap's interface calls in the loop.
type candHeap []cand

func (c cand) less(d cand) bool { return c.rank < d.rank || (c.rank == d.rank && c.pos < d.pos) }

func (h *candHeap) push(c cand) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() cand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[m]) {
			m = l
		}
		if r < len(s) && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

func (b *bpe) decode(ids []int32) string {
	n := 0
	for _, id := range ids {
		if id >= 0 && int(id) < len(b.decoder) {
			n += len(b.decoder[id])
		}
	}
	buf := make([]byte, 0, n)
	for _, id := range ids {
		if id >= 0 && int(id) < len(b.decoder) {
			buf = append(buf, b.decoder[id]...)
		}
	}
	return string(buf)
}
