// Package editdist computes the exact unit-cost Levenshtein distance between
// token-id sequences, the measure dpopflow stores as edit_distance, together
// with first_diff and the operation counts of an optimal alignment.
//
// DPOP exists because preference pairs whose completions differ in only a
// few tokens make plain DPO lower the likelihood of the preferred answer, so
// the preprocessing pipeline measures the distance of every pair. That makes
// this a hot path over millions of pairs of hundreds to thousands of tokens;
// the quadratic dynamic programme is too slow, so Distance trims the common
// prefix and suffix and then runs the bit-parallel algorithm of Myers (1999)
// in Hyyrö's (2003) formulation for global distance, with 64-row blocks for
// long patterns and a diagonal band (Ukkonen) that widens only as far as the
// distance needs.
//
// Token ids are arbitrary int32 values (vocabularies of 200k+ are common), so
// the per-symbol match bitmasks are indexed through a small open-addressing
// hash table of the pattern's distinct symbols rather than an array of
// vocabulary size. Those bitmasks take 8 bytes per distinct token per 64
// tokens of the shorter sequence; past 32 MiB (about 16000 distinct tokens)
// the package switches to a banded dynamic programme, exact but slower.
//
// The package-level functions are safe for concurrent use; they borrow a
// Matcher from a sync.Pool. Callers in a tight loop on one goroutine can hold
// their own Matcher instead.
package editdist

import (
	"math/bits"
	"sync"
)

// Alignment holds the operation counts of one optimal alignment of a to b.
//
// The convention is that of editing a into b: Deletions are tokens present
// only in a, Insertions are tokens present only in b, and Substitutions are
// positions where a token of a is replaced by a different token of b. Their
// sum is the Levenshtein distance, and len(a) - Deletions + Insertions ==
// len(b). Matched tokens are not counted.
type Alignment struct {
	Substitutions, Insertions, Deletions int
}

// Distance returns the unit-cost Levenshtein distance between a and b: the
// least number of single-token insertions, deletions and substitutions that
// turn a into b.
func Distance(a, b []int32) int {
	a, b = trim(a, b)
	if len(a) == 0 || len(b) == 0 {
		return len(a) + len(b)
	}
	m := pool.Get().(*Matcher)
	d := m.distanceTrimmed(a, b)
	pool.Put(m)
	return d
}

// DistanceBounded reports whether the distance between a and b is at most k,
// and if so returns it. Its work grows with min(k, distance) rather than with
// the length of the shorter sequence, and it gives up once the
// distance is certain to exceed k. When ok is false, d is max(k+1, 0), a
// lower bound on the distance.
func DistanceBounded(a, b []int32, k int) (d int, ok bool) {
	a, b = trim(a, b)
	if len(a) == 0 || len(b) == 0 {
		return bounded(len(a)+len(b), k)
	}
	m := pool.Get().(*Matcher)
	d, ok = m.boundedTrimmed(a, b, k)
	pool.Put(m)
	return d, ok
}

// Align returns the operation counts of an optimal alignment of a to b (see
// Alignment for the convention). When several optimal alignments exist, it
// is the one found by tracing back from the ends of both sequences and
// preferring a diagonal step (match or substitution) over a deletion, and a
// deletion over an insertion. Besides the distance's work it stores the
// diagonal band of the computation, about 16 bytes per 64 rows of band
// (which is about as wide as the distance) per token of the longer sequence:
// under 100 KiB for 1000 tokens with 5% edits.
func Align(a, b []int32) Alignment {
	m := pool.Get().(*Matcher)
	al := m.Align(a, b)
	pool.Put(m)
	return al
}

// FirstDiff returns the first index at which a and b differ, -1 if they are
// equal, and len of the shorter one if it is a proper prefix of the other.
func FirstDiff(a, b []int32) int {
	n := min(len(a), len(b))
	for i, x := range a[:n] {
		if x != b[i] {
			return i
		}
	}
	if len(a) == len(b) {
		return -1
	}
	return n
}

var pool = sync.Pool{New: func() any { return new(Matcher) }}

// bounded turns an exact distance into DistanceBounded's result.
func bounded(d, k int) (int, bool) {
	if d > k {
		return max(k+1, 0), false
	}
	return d, true
}

// trim drops the common prefix and suffix, which never change the distance
// and are usually most of a near-duplicate pair.
func trim(a, b []int32) ([]int32, []int32) {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	a, b = a[i:], b[i:]
	la, lb := len(a), len(b)
	for la > 0 && lb > 0 && a[la-1] == b[lb-1] {
		la--
		lb--
	}
	return a[:la], b[:lb]
}

// Matcher computes edit distances while keeping its buffers between calls,
// so that once they have grown to the largest input seen, its methods
// allocate nothing. The zero value is ready to use. A
// Matcher must not be used by several goroutines at once.
type Matcher struct {
	// Open-addressing table from token id to symbol number: a slot holds
	// sym<<32 | uint32(id), and 0 when empty (symbols are numbered from 1;
	// 0 means "not in the pattern" and has an all-zero peq row).
	slots []uint64

	// peq[b*nsym+s] has bit r set when pattern row 64*b+r+1 holds symbol
	// s: block-major, so that the few blocks in a band each read one small
	// array (8 KiB at 1000 distinct tokens) that stays in the L1 cache.
	peq  []uint64
	nb   int
	nsym int // symbols including 0

	// psyms and syms are the pattern and the text mapped to symbol
	// numbers, looked up once per call.
	psyms, syms []int32

	// Per-block vertical delta vectors of the current column.
	blk []block

	// Align keeps every column's band for the traceback: its first block,
	// the value above that block, and where its blocks start in colBlk.
	colFirst, colTop, colOff []int32
	colBlk                   []block
	band                     []int32 // dpTraceback's cells
	ops                      []byte

	dp []int // bandDP's column
}

// block holds the vertical deltas of 64 rows of one column: bit r of pv (mv)
// is set when D[r+1][j] - D[r][j] is +1 (-1), relative to the block's top.
type block struct{ pv, mv uint64 }

// Distance is the package-level Distance using m's buffers.
func (m *Matcher) Distance(a, b []int32) int {
	a, b = trim(a, b)
	if len(a) == 0 || len(b) == 0 {
		return len(a) + len(b)
	}
	return m.distanceTrimmed(a, b)
}

// DistanceBounded is the package-level DistanceBounded using m's buffers.
func (m *Matcher) DistanceBounded(a, b []int32, k int) (d int, ok bool) {
	a, b = trim(a, b)
	if len(a) == 0 || len(b) == 0 {
		return bounded(len(a)+len(b), k)
	}
	return m.boundedTrimmed(a, b, k)
}

// distanceTrimmed needs a and b non-empty with no common prefix or suffix.
func (m *Matcher) distanceTrimmed(a, b []int32) int {
	p, t := a, b
	if len(p) > len(t) {
		p, t = t, p // the distance is symmetric; fewer rows mean fewer blocks
	}
	if !m.prepare(p, t) {
		return m.dpDistance(p, t)
	}
	defer m.release()
	return m.prepared(len(p), len(t))
}

// prepared computes the distance once prepare has succeeded.
func (m *Matcher) prepared(rows, cols int) int {
	if m.nb == 1 {
		return m.singleBlock(rows)
	}
	// Start with a band wide enough for a few dozen edits beyond the length
	// difference (more for long patterns: about 6% of their length) and
	// double it until the answer fits. Each try costs about the band width
	// / 64 blocks per column, so the total is at most about twice the last
	// try, and near-duplicates finish in the first.
	diff := cols - rows
	for s := firstBand(rows); 2*s < rows; s *= 2 {
		if d, ok := m.blocks(rows, cols, diff+2*s); ok {
			return d
		}
	}
	// No distance exceeds the longer length, so this band always succeeds.
	d, _ := m.blocks(rows, cols, cols)
	return d
}

// firstBand is the half-width beyond the length difference of the first
// band tried.
func firstBand(rows int) int { return max(16, rows/32) }

// dpDistance finds the distance with bandDP, doubling the band.
func (m *Matcher) dpDistance(p, t []int32) int {
	for k := len(t) - len(p) + 64; ; k *= 2 {
		if d, ok := m.bandDP(p, t, k); ok {
			return d
		}
	}
}

func (m *Matcher) boundedTrimmed(a, b []int32, k int) (int, bool) {
	p, t := a, b
	if len(p) > len(t) {
		p, t = t, p
	}
	if len(t)-len(p) > k {
		return max(k+1, 0), false // each extra token costs at least one edit
	}
	// No distance exceeds len(t); a smaller k keeps k+1 and the band
	// arithmetic clear of overflow for k near math.MaxInt.
	k = min(k, len(t))
	if !m.prepare(p, t) {
		return m.bandDP(p, t, k)
	}
	defer m.release()
	if m.nb == 1 {
		return bounded(m.singleBlock(len(p)), k)
	}
	// As in prepared: a narrow band first, since it costs less than the
	// band for k and near-duplicates fit in it; a fit is the exact answer.
	diff := len(t) - len(p)
	for s := firstBand(len(p)); diff+2*s < k && 2*s < len(p); s *= 2 {
		if d, ok := m.blocks(len(p), len(t), diff+2*s); ok {
			return d, true
		}
	}
	return m.blocks(len(p), len(t), k)
}

// maxPeqWords caps the match-mask table, (distinct pattern tokens + 1) *
// blocks words, which grows as the square of the pattern length when its
// tokens are distinct: 128 KiB at 1000 tokens, 32 MiB at about 16000.
var maxPeqWords = 1 << 22

// prepare builds the pattern's match masks and maps the text to symbols.
// When it returns true, the call must be paired with release before m is
// used again; false means the table would exceed maxPeqWords and nothing
// needs releasing.
func (m *Matcher) prepare(p, t []int32) bool {
	nb := (len(p) + 63) / 64
	m.nb = nb
	// Load factor at most 1/2 keeps probe sequences short. Clearing the
	// table is a memclr of 8 bytes per slot, cheaper than any bookkeeping
	// of which slots were used.
	size := 16
	for size < 2*len(p) {
		size *= 2
	}
	if len(m.slots) < size {
		m.slots = make([]uint64, size)
	}
	slots := m.slots[:size]
	clear(slots)
	mask := uint32(size - 1)
	shift := uint(32 - bits.TrailingZeros(uint(size)))

	if cap(m.psyms) < len(p) {
		m.psyms = make([]int32, len(p))
	}
	psyms := m.psyms[:len(p)]
	nsym := int32(0)
	for i, id := range p {
		psyms[i] = insert(slots, mask, shift, id, &nsym)
	}
	// peq is all zeros outside prepare..release (release clears exactly the
	// words set here), so a call costs O(len(p)) rather than O(symbols *
	// blocks) of clearing: 128 KiB per call at 1000 distinct tokens.
	m.nsym = int(nsym) + 1
	need := m.nsym * nb
	if need > maxPeqWords {
		return false
	}
	if len(m.peq) < need {
		m.peq = make([]uint64, min(max(need, 2*len(m.peq)), maxPeqWords))
	}
	peq, ns := m.peq, m.nsym
	for i, s := range psyms {
		peq[(i>>6)*ns+int(s)] |= 1 << (uint(i) & 63)
	}
	m.psyms = psyms

	if cap(m.syms) < len(t) {
		m.syms = make([]int32, len(t))
	}
	m.syms = m.syms[:len(t)]
	for j, id := range t {
		m.syms[j] = lookup(slots, mask, shift, id)
	}
	return true
}

// bandDP is Ukkonen's banded dynamic programme, for patterns too long for
// the match-mask table: time O(len(t) * k), memory O(len(p)). It needs
// len(p) <= len(t) and k >= len(t)-len(p). Cells outside the band (see
// blocks) hold k+1, which is exact for "more than k".
func (m *Matcher) bandDP(p, t []int32, k int) (int, bool) {
	rows, cols := len(p), len(t)
	diff := cols - rows
	s := (k - diff) / 2
	inf := k + 1
	if cap(m.dp) < rows+1 {
		m.dp = make([]int, rows+1)
	}
	col := m.dp[:rows+1]
	for i := range col {
		col[i] = inf
		if i <= s {
			col[i] = i
		}
	}
	for j := 1; j <= cols; j++ {
		lo, hi := max(0, j-diff-s), min(rows, j+s)
		// diag is D[i-1][j-1]; col[i] holds column j-1 until row i of
		// column j replaces it, and col[i-1] already holds column j.
		diag, start := col[0], 1
		if lo == 0 {
			col[0] = min(j, inf)
		} else {
			diag, start = col[lo-1], lo
			col[lo-1] = inf // above the band from now on
		}
		best := inf
		tj := t[j-1]
		for i := start; i <= hi; i++ {
			c := diag
			if p[i-1] != tj {
				c++
			}
			diag = col[i]
			c = min(c, diag+1, col[i-1]+1, inf)
			col[i] = c
			best = min(best, c)
		}
		if lo == 0 {
			best = min(best, col[0])
		}
		if best > k {
			return inf, false // every alignment passes this column
		}
	}
	return bounded(col[rows], k)
}

// release restores the all-zero peq that prepare relies on.
func (m *Matcher) release() {
	peq, ns := m.peq, m.nsym
	for i, s := range m.psyms {
		peq[(i>>6)*ns+int(s)] = 0
	}
}

// hash spreads consecutive token ids (Fibonacci hashing) over the table.
func hash(id int32, shift uint) uint32 {
	return (uint32(id) * 0x9E3779B9) >> (shift & 31) // the mask spares a range check
}

// insert returns id's symbol number, numbering a new id *nsym+1.
func insert(slots []uint64, mask uint32, shift uint, id int32, nsym *int32) int32 {
	for h := hash(id, shift); ; h = (h + 1) & mask {
		sl := slots[h]
		if sl == 0 {
			*nsym++
			slots[h] = uint64(*nsym)<<32 | uint64(uint32(id))
			return *nsym
		}
		if int32(sl) == id {
			return int32(sl >> 32)
		}
	}
}

// lookup returns id's symbol number, or 0 if it is not in the pattern.
func lookup(slots []uint64, mask uint32, shift uint, id int32) int32 {
	for h := hash(id, shift); ; h = (h + 1) & mask {
		sl := slots[h]
		if sl == 0 || int32(sl) == id {
			return int32(sl >> 32)
		}
	}
}

// singleBlock is the whole computation for a pattern of at most 64 tokens.
// Column 0 is D[i][0] = i: all vertical deltas +1; D[0][cols] = cols.
func (m *Matcher) singleBlock(rows int) int {
	b := run1(block{pv: ^uint64(0)}, m.peq[:m.nsym], m.syms)
	return len(m.syms) + b.delta(^uint64(0)>>(63-uint(rows-1)&63))
}

// advance moves one 64-row block one column to the right, given the
// horizontal delta hin (-1, 0 or +1) entering its top row, and returns the
// horizontal delta leaving the row at bit hi. This is Myers' block step as
// written in edlib (Šošić & Šikić 2017).
func advance(pv, mv, eq uint64, hin int, hi uint) (uint64, uint64, int) {
	neg := uint64(hin>>1) & 1 // 1 when hin == -1
	xv := eq | mv
	eq |= neg
	xh := (((eq & pv) + pv) ^ pv) | eq
	ph := mv | ^(xh | pv)
	mh := pv & xh
	hout := int((ph>>hi)&1) - int((mh>>hi)&1)
	ph = ph<<1 | uint64((hin+1)>>1)
	mh = mh<<1 | neg
	return mh | ^(xv | ph), ph & xv, hout
}

// blocks runs the multi-block recurrence for pattern rows 1..rows against the
// mapped text, computing in each column only the blocks that meet the
// diagonal band of cells that can lie on an alignment of cost <= k. It
// returns (distance, true) when the distance is at most k. It needs
// rows <= cols and k >= cols-rows.
//
// Why the band is exact: every value computed is an upper bound on the true
// D[i][j], because blocks enter the band initialised with vertical deltas of
// +1 below an already-computed row and the row above the first block is
// assumed to grow by +1 per column, both upper bounds, and the recurrence is
// monotone. A cell on an optimal path of cost <= k satisfies
// |i-j| + |(rows-i)-(cols-j)| <= k, so the whole path lies in the band and
// its cells are computed exactly by induction along it.
//
// No per-column score is kept: a value is read off the vertical deltas with
// popcounts, starting from top, the value of the row above the first block.
func (m *Matcher) blocks(rows, cols, k int) (int, bool) {
	diff := cols - rows
	s := (k - diff) / 2 // band: rows col-diff-s .. col+s of column col
	nb := m.nb
	if cap(m.blk) < nb {
		m.blk = make([]block, nb)
	}
	blk := m.blk[:nb]
	lastMask := ^uint64(0) >> (63 - uint(rows-1)&63) // the final block's real rows
	peq, syms, ns := m.peq, m.syms, m.nsym
	// first..last are the blocks in the band; top is D (or its assumed
	// upper bound) at row 64*first of column j.
	first, last, top := 0, -1, 0
	for j := 0; j < cols; {
		col := j + 1
		for want := (min(col+s, rows) - 1) >> 6; last < want; {
			// A block entering the band starts as column j of a chain of
			// insertions below the block above it: an upper bound.
			last++
			blk[last] = block{pv: ^uint64(0)}
		}
		if lo := col - diff - s; lo > 1 {
			for f := (lo - 1) >> 6; first < f; first++ {
				top += blk[first].delta(^uint64(0))
			}
		}
		// The band keeps these blocks until its top or bottom edge crosses
		// into the next block. Running that stretch of columns in a small
		// loop of its own keeps the band bookkeeping, and for one or two
		// blocks the block state itself, out of memory in the per-column
		// work.
		end := min(cols, 64*(first+1)+diff+s)
		if last < nb-1 {
			end = min(end, 64*(last+1)-s)
		}
		seg, pq := syms[j:end], peq[first*ns:(last+1)*ns]
		switch last - first {
		case 0:
			blk[first] = run1(blk[first], pq, seg)
		case 1:
			blk[first], blk[first+1] = run2(blk[first], blk[first+1], pq[:ns], pq[ns:], seg)
		default:
			runN(blk[first:last+1], pq, ns, seg)
		}
		top += len(seg) // the row above the band grows by one per column
		j = end
		if last == nb-1 {
			// D[rows][cols] >= D[rows][j] - (cols-j): stop once even the
			// cheapest way to the corner costs more than k.
			d := top
			for b := first; b < nb-1; b++ {
				d += blk[b].delta(^uint64(0))
			}
			d += blk[nb-1].delta(lastMask)
			if j == cols {
				return bounded(d, k)
			}
			if d-(cols-j) > k {
				return max(k+1, 0), false
			}
		}
	}
	panic("editdist: band never reached the final block") // unreachable: at col == cols the band's bottom is row rows
}

// delta is D at the block's last row selected by mask minus D at the row
// above the block.
func (b block) delta(mask uint64) int {
	return bits.OnesCount64(b.pv&mask) - bits.OnesCount64(b.mv&mask)
}

// The run functions advance the blocks of a band over the text symbols syms,
// one column each; peq[b*ns+sym] is the match mask of block b of the band
// (run1 and run2 take one slice per block). A +1
// delta enters the first block's top: the top row D[0][j] = j grows by one
// per column, and above a band that is the upper bound assumed.
//
// The step is Myers' block step as written in edlib (Šošić & Šikić 2017),
// with the delta entering a block as two bits, hp (+1) and hn (-1). run1 and
// run2 keep the blocks in registers, which Go's compiler does not manage for
// the slice version.

func run1(b block, peq []uint64, syms []int32) block {
	pv, mv := b.pv, b.mv
	for _, sym := range syms {
		eq := peq[sym]
		xv := eq | mv
		xh := (((eq & pv) + pv) ^ pv) | eq
		ph := mv | ^(xh | pv)
		mh := pv & xh
		ph = ph<<1 | 1
		mh <<= 1
		pv = mh | ^(xv | ph)
		mv = ph & xv
	}
	return block{pv, mv}
}

func run2(b0, b1 block, peq0, peq1 []uint64, syms []int32) (block, block) {
	pv0, mv0, pv1, mv1 := b0.pv, b0.mv, b1.pv, b1.mv
	for _, sym := range syms {
		eq0, eq1 := peq0[sym], peq1[sym]

		xv := eq0 | mv0
		xh := (((eq0 & pv0) + pv0) ^ pv0) | eq0
		ph := mv0 | ^(xh | pv0)
		mh := pv0 & xh
		hp, hn := ph>>63, mh>>63
		ph = ph<<1 | 1
		mh <<= 1
		pv0 = mh | ^(xv | ph)
		mv0 = ph & xv

		xv = eq1 | mv1
		eq1 |= hn
		xh = (((eq1 & pv1) + pv1) ^ pv1) | eq1
		ph = mv1 | ^(xh | pv1)
		mh = pv1 & xh
		ph = ph<<1 | hp
		mh = mh<<1 | hn
		pv1 = mh | ^(xv | ph)
		mv1 = ph & xv
	}
	return block{pv0, mv0}, block{pv1, mv1}
}

func runN(bl []block, peq []uint64, ns int, syms []int32) {
	for _, sym := range syms {
		hp, hn := uint64(1), uint64(0)
		for b := range bl {
			pv, mv, eq := bl[b].pv, bl[b].mv, peq[b*ns+int(sym)]
			xv := eq | mv
			eq |= hn
			xh := (((eq & pv) + pv) ^ pv) | eq
			ph := mv | ^(xh | pv)
			mh := pv & xh
			outP, outN := ph>>63, mh>>63
			ph = ph<<1 | hp
			mh = mh<<1 | hn
			bl[b] = block{mh | ^(xv | ph), ph & xv}
			hp, hn = outP, outN
		}
	}
}

// Align is the package-level Align using m's buffers.
func (m *Matcher) Align(a, b []int32) Alignment {
	var al Alignment
	for _, op := range m.alignOps(a, b) {
		switch op {
		case opSub:
			al.Substitutions++
		case opIns:
			al.Insertions++
		case opDel:
			al.Deletions++
		}
	}
	return al
}

// Alignment operations, in the a-into-b convention of Alignment.
const (
	opMatch = 'M'
	opSub   = 'S'
	opIns   = 'I' // token only in b
	opDel   = 'D' // token only in a
)

// alignOps returns an optimal edit script turning a into b, one op per step,
// in order. The slice is m's buffer, valid until the next call.
func (m *Matcher) alignOps(a, b []int32) []byte {
	ops := m.ops[:0]
	pre := FirstDiff(a, b)
	if pre < 0 {
		pre = len(a)
	}
	ta, tb := trim(a, b)
	suf := len(a) - pre - len(ta)
	for range pre {
		ops = append(ops, opMatch)
	}
	p, t := ta, tb
	onlyP, onlyT := byte(opDel), byte(opIns)
	if len(p) > len(t) {
		p, t = t, p
		onlyP, onlyT = onlyT, onlyP
	}
	switch {
	case len(p) == 0:
		for range t {
			ops = append(ops, onlyT)
		}
	default:
		start := len(ops)
		ops = m.traceback(p, t, onlyP, onlyT, ops)
		// traceback emits from the end backwards.
		rev := ops[start:]
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
	}
	for range suf {
		ops = append(ops, opMatch)
	}
	m.ops = ops
	return ops
}

// far stands for cells outside the stored band: more than any distance.
const far = 1 << 62

// traceback finds the distance d, recomputes the band for k = d keeping each
// column's blocks, then walks back from the corner, reading cell values off
// the stored vertical deltas with popcounts. Memory is one 16-byte block per
// 64 band rows per column: O(len(t) * (d/64 + 2)).
//
// The walk only accepts a step to a neighbour whose stored value is exactly
// one less (or equal, for a match); stored values are upper bounds of the
// true ones (see blocks), so such a neighbour is exact and optimal, and the
// optimal neighbour of a cell on an optimal path of cost d lies in the band.
func (m *Matcher) traceback(p, t []int32, onlyP, onlyT byte, ops []byte) []byte {
	if !m.prepare(p, t) {
		return m.dpTraceback(p, t, onlyP, onlyT, ops)
	}
	defer m.release()
	rows, cols, nb := len(p), len(t), m.nb
	d := m.prepared(rows, cols)
	diff := cols - rows
	s := (d - diff) / 2
	if cap(m.blk) < nb {
		m.blk = make([]block, nb)
	}
	blk := m.blk[:nb]
	if cap(m.colFirst) < cols+2 {
		m.colFirst = make([]int32, cols+2)
		m.colTop = make([]int32, cols+2)
		m.colOff = make([]int32, cols+2)
	}
	colFirst, colTop, colOff := m.colFirst[:cols+2], m.colTop[:cols+2], m.colOff[:cols+2]
	colBlk := m.colBlk[:0]
	lastHi := uint(rows-1) & 63
	first, last, top := 0, -1, 0
	for j, sym := range m.syms {
		col := j + 1
		for want := (min(col+s, rows) - 1) >> 6; last < want; {
			last++
			blk[last] = block{pv: ^uint64(0)}
		}
		if lo := col - diff - s; lo > 1 {
			for f := (lo - 1) >> 6; first < f; first++ {
				top += blk[first].delta(^uint64(0))
			}
		}
		hin := 1
		for b := first; b <= last; b++ {
			hi := uint(63)
			if b == nb-1 {
				hi = lastHi
			}
			blk[b].pv, blk[b].mv, hin = advance(blk[b].pv, blk[b].mv, m.peq[b*m.nsym+int(sym)], hin, hi)
		}
		top++
		colFirst[col], colTop[col], colOff[col] = int32(first), int32(top), int32(len(colBlk))
		colBlk = append(colBlk, blk[first:last+1]...)
	}
	colOff[cols+1] = int32(len(colBlk))
	m.colBlk = colBlk
	// val returns D[i][j] for 0 <= i <= rows, 0 <= j <= cols, or far.
	val := func(i, j int) int {
		if j == 0 {
			return i
		}
		if i == 0 {
			return j
		}
		bl := colBlk[colOff[j]:colOff[j+1]]
		b := (i-1)>>6 - int(colFirst[j])
		if b < 0 || b >= len(bl) {
			return far
		}
		v := int(colTop[j])
		for _, x := range bl[:b] {
			v += x.delta(^uint64(0))
		}
		return v + bl[b].delta(^uint64(0)>>(63-uint(i-1)&63))
	}
	return walk(p, t, d, val, onlyP, onlyT, ops)
}

// dpTraceback is traceback for patterns too long for the match-mask table:
// bandDP's band for k = d, stored as int32 cells, O(len(t) * d) memory.
func (m *Matcher) dpTraceback(p, t []int32, onlyP, onlyT byte, ops []byte) []byte {
	rows, cols := len(p), len(t)
	d := m.dpDistance(p, t)
	diff := cols - rows
	s := (d - diff) / 2
	w := diff + 2*s + 1 // band rows per column: j-diff-s .. j+s
	need := (cols + 1) * w
	if cap(m.band) < need {
		m.band = make([]int32, need)
	}
	band := m.band[:need]
	val := func(i, j int) int {
		if j == 0 {
			return i
		}
		if i == 0 {
			return j
		}
		o := i - (j - diff - s)
		if o < 0 || o >= w {
			return far
		}
		return int(band[j*w+o])
	}
	for j := 1; j <= cols; j++ {
		for i := max(1, j-diff-s); i <= min(rows, j+s); i++ {
			c := val(i-1, j-1)
			if p[i-1] != t[j-1] {
				c++
			}
			c = min(c, val(i-1, j)+1, val(i, j-1)+1)
			band[j*w+i-(j-diff-s)] = int32(c)
		}
	}
	return walk(p, t, d, val, onlyP, onlyT, ops)
}

// walk appends the ops of an optimal alignment from the corner (rows, cols)
// of value d back to the origin, reading values through val.
func walk(p, t []int32, d int, val func(i, j int) int, onlyP, onlyT byte, ops []byte) []byte {
	rows, cols := len(p), len(t)
	i, j, v := rows, cols, d
	// Rows hold p's tokens and columns t's, so a step up consumes a token
	// of p only (onlyP) and a step left one of t only (onlyT). Deletions
	// are tried before insertions whichever of a and b is p.
	upFirst := onlyP == opDel
	for i > 0 && j > 0 {
		switch {
		case p[i-1] == t[j-1]:
			ops = append(ops, opMatch) // a match is always optimal
			i, j = i-1, j-1
		case val(i-1, j-1) == v-1:
			ops = append(ops, opSub)
			i, j, v = i-1, j-1, v-1
		case upFirst && val(i-1, j) == v-1, !upFirst && val(i, j-1) != v-1:
			ops = append(ops, onlyP)
			i, v = i-1, v-1
		default:
			ops = append(ops, onlyT)
			j, v = j-1, v-1
		}
	}
	for ; i > 0; i-- {
		ops = append(ops, onlyP)
	}
	for ; j > 0; j-- {
		ops = append(ops, onlyT)
	}
	return ops
}
