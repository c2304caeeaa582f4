package editdist

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/agnivade/levenshtein"
)

// dpDistance is the textbook two-row dynamic programme, the reference every
// fast path is checked against.
func dpDistance(a, b []int32) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// toRune maps a token id to a rune agnivade can compare, skipping the UTF-16
// surrogate range, which a Go string cannot hold.
func toRune(id int32) rune {
	if id < 0xD800 {
		return rune(id)
	}
	return rune(id) + 0x800
}

func toString(ids []int32) string {
	var sb strings.Builder
	sb.Grow(4 * len(ids))
	for _, id := range ids {
		sb.WriteRune(toRune(id))
	}
	return sb.String()
}

func agnivadeDistance(a, b []int32) int {
	return levenshtein.ComputeDistance(toString(a), toString(b))
}

// randSeq draws n ids uniformly from [base, base+vocab).
func randSeq(r *rand.Rand, n int, base, vocab int32) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = base + r.Int32N(vocab)
	}
	return s
}

// mutate applies edits substitutions, insertions and deletions at uniformly
// random positions, so the differences are spread over the whole sequence.
func mutate(r *rand.Rand, a []int32, edits int, base, vocab int32) []int32 {
	b := append([]int32(nil), a...)
	for range edits {
		pos := 0
		if len(b) > 0 {
			pos = r.IntN(len(b))
		}
		switch op := r.IntN(3); {
		case op == 0 && len(b) > 0:
			b[pos] = base + r.Int32N(vocab)
		case op == 1 && len(b) > 0:
			b = append(b[:pos], b[pos+1:]...)
		default:
			b = append(b[:pos], append([]int32{base + r.Int32N(vocab)}, b[pos:]...)...)
		}
	}
	return b
}

func seq(ids ...int32) []int32 { return ids }

// check compares every entry point on one pair against the references.
func check(t *testing.T, name string, a, b []int32) {
	t.Helper()
	want := dpDistance(a, b)
	if got := Distance(a, b); got != want {
		t.Fatalf("%s: Distance(len %d, len %d) = %d, want %d (plain DP)", name, len(a), len(b), got, want)
	}
	if !outsideRuneRange(a) && !outsideRuneRange(b) {
		if ag := agnivadeDistance(a, b); ag != want {
			t.Fatalf("%s: agnivade = %d, plain DP = %d", name, ag, want)
		}
	}
	if got := Distance(b, a); got != want {
		t.Fatalf("%s: Distance(b, a) = %d, want %d", name, got, want)
	}
	for _, k := range []int{-1, 0, want - 2, want - 1, want, want + 1, want + 64, len(a) + len(b), math.MaxInt} {
		d, ok := DistanceBounded(a, b, k)
		if want <= k && (!ok || d != want) {
			t.Fatalf("%s: DistanceBounded(k=%d) = (%d, %v), want (%d, true)", name, k, d, ok, want)
		}
		if want > k && (ok || d != max(k+1, 0)) {
			t.Fatalf("%s: DistanceBounded(k=%d) = (%d, %v), want (%d, false); distance %d", name, k, d, ok, max(k+1, 0), want)
		}
	}
	checkAlign(t, name, a, b, want)
	if fd, wfd := FirstDiff(a, b), naiveFirstDiff(a, b); fd != wfd {
		t.Fatalf("%s: FirstDiff = %d, want %d", name, fd, wfd)
	}
}

// outsideRuneRange reports ids that toRune cannot map to a valid rune, for
// which the agnivade comparison is skipped.
func outsideRuneRange(s []int32) bool {
	for _, id := range s {
		if id < 0 || id > 0x10FFFF-0x800 {
			return true
		}
	}
	return false
}

func naiveFirstDiff(a, b []int32) int {
	for i := 0; ; i++ {
		switch {
		case i == len(a) && i == len(b):
			return -1
		case i == len(a) || i == len(b) || a[i] != b[i]:
			return i
		}
	}
}

// checkAlign replays the edit script behind Align on a and requires it to
// produce b at cost exactly the distance, and the counts to match it.
func checkAlign(t *testing.T, name string, a, b []int32, dist int) {
	t.Helper()
	var m Matcher
	ops := m.alignOps(a, b)
	var out []int32
	i, j, cost := 0, 0, 0
	for n, op := range ops {
		switch op {
		case opMatch:
			if i >= len(a) || j >= len(b) || a[i] != b[j] {
				t.Fatalf("%s: op %d: match of a[%d] and b[%d] that differ or do not exist", name, n, i, j)
			}
			out = append(out, a[i])
			i, j = i+1, j+1
		case opSub:
			if i >= len(a) || j >= len(b) || a[i] == b[j] {
				t.Fatalf("%s: op %d: substitution of a[%d] by b[%d] that are equal or do not exist", name, n, i, j)
			}
			out = append(out, b[j])
			i, j, cost = i+1, j+1, cost+1
		case opDel:
			if i >= len(a) {
				t.Fatalf("%s: op %d: deletion past the end of a", name, n)
			}
			i, cost = i+1, cost+1
		case opIns:
			if j >= len(b) {
				t.Fatalf("%s: op %d: insertion past the end of b", name, n)
			}
			out = append(out, b[j])
			j, cost = j+1, cost+1
		}
	}
	if i != len(a) || j != len(b) || fmt.Sprint(out) != fmt.Sprint(append([]int32{}, b...)) {
		t.Fatalf("%s: edit script does not turn a into b (consumed %d/%d of a, %d/%d of b)", name, i, len(a), j, len(b))
	}
	if cost != dist {
		t.Fatalf("%s: edit script costs %d, distance is %d", name, cost, dist)
	}
	al := Align(a, b)
	if al.Substitutions+al.Insertions+al.Deletions != dist {
		t.Fatalf("%s: Align = %+v sums to %d, distance is %d", name, al, al.Substitutions+al.Insertions+al.Deletions, dist)
	}
	if len(a)-al.Deletions+al.Insertions != len(b) {
		t.Fatalf("%s: Align = %+v: len(a) %d - deletions + insertions != len(b) %d", name, al, len(a), len(b))
	}
}

func TestDistanceTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	long := randSeq(r, 1500, 0, 50000)
	big := randSeq(r, 300, 0x10000, 200000) // every id above 0xFFFF
	tests := []struct {
		name string
		a, b []int32
		want int
	}{
		{"both empty", nil, nil, 0},
		{"empty a", nil, seq(1, 2, 3), 3},
		{"empty b", seq(1, 2, 3), []int32{}, 3},
		{"identical", seq(5, 6, 7, 8), seq(5, 6, 7, 8), 0},
		{"length 1 equal", seq(9), seq(9), 0},
		{"length 1 differ", seq(9), seq(10), 1},
		{"length 1 vs 2", seq(9), seq(9, 9), 1},
		{"kitten sitting", seq('k', 'i', 't', 't', 'e', 'n'), seq('s', 'i', 't', 't', 'i', 'n', 'g'), 3},
		{"swap", seq(1, 2), seq(2, 1), 2},
		{"prefix", seq(1, 2, 3, 4), seq(1, 2), 2},
		{"suffix", seq(3, 4), seq(1, 2, 3, 4), 2},
		{"disjoint", seq(1, 2, 3), seq(4, 5, 6, 7, 8), 5},
		{"negative ids", seq(-1, -2, -3), seq(-1, 3, -3), 1},
		{"extreme ids", seq(-1<<31, 1<<31-1, 0), seq(1<<31-1, 0, -1<<31), 2},
		{"long identical", long, long, 0},
		{"long vs empty", long, nil, 1500},
		{"above 0xFFFF one substitution", big, append(append(append([]int32{}, big[:150]...), 0x10000), big[151:]...), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Distance(tt.a, tt.b); got != tt.want {
				t.Errorf("Distance = %d, want %d", got, tt.want)
			}
			check(t, tt.name, tt.a, tt.b)
		})
	}
}

// TestDistanceLengths covers pattern lengths at and around the 64-token block
// boundaries, where the multi-block carries and the last-block mask matter.
func TestDistanceLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193, 1000, 1100} {
		for _, vocab := range []int32{2, 4, 50000} {
			for _, edits := range []int{1, 3, n / 20, n / 3, n} {
				a := randSeq(r, n, 0, vocab)
				b := mutate(r, a, edits, 0, vocab)
				check(t, fmt.Sprintf("n=%d vocab=%d edits=%d", n, vocab, edits), a, b)
			}
			// Unrelated sequences of unequal lengths: distance near max.
			a := randSeq(r, n, 0, vocab)
			b := randSeq(r, n+r.IntN(70), 0, vocab)
			check(t, fmt.Sprintf("n=%d vocab=%d unrelated", n, vocab), a, b)
		}
	}
}

// TestDistanceRandom compares against both references on many random pairs,
// few-edit and many-edit, with ids drawn above 0xFFFF half the time.
func TestDistanceRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 600 {
		n := r.IntN(300)
		if i%10 == 0 {
			n = 500 + r.IntN(900)
		}
		base, vocab := int32(0), int32(1+r.IntN(300))
		if i%2 == 1 {
			base, vocab = 0x10000, 200000
		}
		edits := r.IntN(1 + n/10)
		if i%3 == 0 {
			edits = r.IntN(1 + 2*n)
		}
		a := randSeq(r, n, base, vocab)
		b := mutate(r, a, edits, base, vocab)
		check(t, fmt.Sprintf("case %d n=%d edits=%d", i, n, edits), a, b)
	}
}

// TestMatcherReuse alternates long and short inputs on one Matcher, so stale
// hash-table slots and match masks from an earlier call would show.
func TestMatcherReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var m Matcher
	for i := range 200 {
		n := 1 + r.IntN(100)
		if i%4 == 0 {
			n = 300 + r.IntN(300)
		}
		vocab := int32(1 + r.IntN(1000))
		a := randSeq(r, n, 0, vocab)
		b := mutate(r, a, r.IntN(n/2+1), 0, vocab)
		want := dpDistance(a, b)
		if got := m.Distance(a, b); got != want {
			t.Fatalf("call %d: Matcher.Distance = %d, want %d", i, got, want)
		}
		if d, ok := m.DistanceBounded(a, b, want); !ok || d != want {
			t.Fatalf("call %d: Matcher.DistanceBounded(k=d) = (%d, %v), want (%d, true)", i, d, ok, want)
		}
		if al := m.Align(a, b); al.Substitutions+al.Insertions+al.Deletions != want {
			t.Fatalf("call %d: Matcher.Align = %+v, distance %d", i, al, want)
		}
	}
}

func TestDistanceNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	a := randSeq(r, 1000, 0, 50000)
	b := mutate(r, a, 50, 0, 50000)
	var m Matcher
	m.Distance(a, b) // grow the buffers
	if n := testing.AllocsPerRun(20, func() { m.Distance(a, b) }); n != 0 {
		t.Errorf("Matcher.Distance allocates %v times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(20, func() { m.DistanceBounded(a, b, 10) }); n != 0 {
		t.Errorf("Matcher.DistanceBounded allocates %v times per call, want 0", n)
	}
	m.Align(a, b)
	if n := testing.AllocsPerRun(20, func() { m.Align(a, b) }); n != 0 {
		t.Errorf("Matcher.Align allocates %v times per call, want 0", n)
	}
}

// TestDistanceBoundedEarlyExit checks the bound is honoured on a pair far
// apart: the answer must be "more than k", with d the promised lower bound.
func TestDistanceBoundedEarlyExit(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	a := randSeq(r, 2000, 0, 50000)
	b := randSeq(r, 2000, 0, 50000)
	for _, k := range []int{0, 5, 100, 1000} {
		if d, ok := DistanceBounded(a, b, k); ok || d != k+1 {
			t.Errorf("DistanceBounded(unrelated, k=%d) = (%d, %v), want (%d, false)", k, d, ok, k+1)
		}
	}
	// Length difference alone exceeds k.
	if d, ok := DistanceBounded(a[:10], a, 50); ok || d != 51 {
		t.Errorf("DistanceBounded(len 10, len 2000, k=50) = (%d, %v), want (51, false)", d, ok)
	}
}

func FuzzDistance(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint8(0))
	f.Add([]byte("kitten"), []byte("sitting"), uint8(0))
	f.Add([]byte("abc"), []byte("abc"), uint8(1))
	f.Add([]byte(strings.Repeat("ab", 40)), []byte(strings.Repeat("ba", 41)), uint8(2))
	f.Add([]byte(strings.Repeat("xyz", 50)), []byte(strings.Repeat("xy", 70)), uint8(3))
	f.Add([]byte(strings.Repeat("q", 64)), []byte(strings.Repeat("q", 65)), uint8(4))
	f.Add([]byte(strings.Repeat("abcdefgh", 17)), []byte(strings.Repeat("abcdefhg", 16)), uint8(5))
	f.Fuzz(func(t *testing.T, x, y []byte, mode uint8) {
		// Bytes become ids through a per-mode spread so that the fuzzer
		// exercises small and large, including negative, token ids.
		mul := []int32{1, 257, 65599, -7919, 1 << 20}[int(mode)%5]
		toIDs := func(bs []byte) []int32 {
			ids := make([]int32, len(bs))
			for i, c := range bs {
				ids[i] = int32(c) * mul
			}
			return ids
		}
		check(t, "fuzz", toIDs(x), toIDs(y))
	})
}

// TestBandEdges builds pairs whose only optimal alignment runs along an edge
// of the diagonal band that DistanceBounded(k = distance) computes: all
// insertions first and all deletions last (the band's top edge), or the
// reverse (its bottom edge). A band one row too narrow gets these wrong.
func TestBandEdges(t *testing.T) {
	next := int32(1)
	distinct := func(n int) []int32 { // tokens never seen before
		s := make([]int32, n)
		for i := range s {
			s[i] = next
			next++
		}
		return s
	}
	cat := func(x, y []int32) []int32 { return append(append([]int32{}, x...), y...) }
	for _, c := range []int{65, 100, 130, 200} {
		for _, s := range []int{0, 1, 5, 31, 40} {
			for _, z := range []int{s, s + 1, s + 7, s + 64} {
				common, w, extra := distinct(c), distinct(s), distinct(z)
				for name, pair := range map[string][2][]int32{
					"top":    {cat(common, w), cat(extra, common)}, // insert extra, delete w
					"bottom": {cat(w, common), cat(common, extra)}, // delete w, insert extra
				} {
					a, b := pair[0], pair[1]
					want := s + z
					if got := dpDistance(a, b); got != want {
						t.Fatalf("test construction: %s c=%d s=%d z=%d: plain DP %d, want %d", name, c, s, z, got, want)
					}
					for _, ab := range [][2][]int32{{a, b}, {b, a}} {
						if d, ok := DistanceBounded(ab[0], ab[1], want); !ok || d != want {
							t.Fatalf("%s c=%d s=%d z=%d: DistanceBounded(k=%d) = (%d, %v), want (%d, true)", name, c, s, z, want, d, ok, want)
						}
						if d, ok := DistanceBounded(ab[0], ab[1], want-1); ok {
							t.Fatalf("%s c=%d s=%d z=%d: DistanceBounded(k=%d) = (%d, true), distance is %d", name, c, s, z, want-1, d, want)
						}
						checkAlign(t, fmt.Sprintf("%s c=%d s=%d z=%d", name, c, s, z), ab[0], ab[1], want)
					}
				}
			}
		}
	}
}

// TestDPFallback runs everything through the banded dynamic programme that
// replaces the bit-parallel path when the match-mask table would be too big
// (patterns of more than about 16000 distinct tokens).
func TestDPFallback(t *testing.T) {
	defer func(old int) { maxPeqWords = old }(maxPeqWords)
	maxPeqWords = 0
	r := rand.New(rand.NewPCG(13, 14))
	for i := range 150 {
		n := r.IntN(260)
		vocab := int32(1 + r.IntN(500))
		a := randSeq(r, n, 0, vocab)
		b := mutate(r, a, r.IntN(n/4+2), 0, vocab)
		if i%5 == 0 {
			b = randSeq(r, r.IntN(260), 0, vocab)
		}
		check(t, fmt.Sprintf("fallback case %d", i), a, b)
	}
}

// TestAlignOutsideBand is a pair (found by search) whose traceback asks for
// a cell above the stored band, in a block that was never computed there.
func TestAlignOutsideBand(t *testing.T) {
	digits := func(s string) []int32 {
		ids := make([]int32, len(s))
		for i, c := range s {
			ids[i] = c - '0'
		}
		return ids
	}
	a := digits("14210323322432012020413241312432420343234333424203123322121132412230022231342321242220314032021242012243342001203100")
	b := digits("142103233224320120204132413124124203432343334242031233221211324122300222313423212422203140320210242012243342001203100")
	check(t, "outside band", a, b)
}

func TestAlignTable(t *testing.T) {
	tests := []struct {
		name string
		a, b []int32
		want Alignment
	}{
		{"equal", seq(1, 2, 3), seq(1, 2, 3), Alignment{}},
		{"both empty", nil, nil, Alignment{}},
		{"all deleted", seq(1, 2, 3), nil, Alignment{Deletions: 3}},
		{"all inserted", nil, seq(1, 2, 3), Alignment{Insertions: 3}},
		{"kitten sitting", seq('k', 'i', 't', 't', 'e', 'n'), seq('s', 'i', 't', 't', 'i', 'n', 'g'), Alignment{Substitutions: 2, Insertions: 1}},
		{"sitting kitten", seq('s', 'i', 't', 't', 'i', 'n', 'g'), seq('k', 'i', 't', 't', 'e', 'n'), Alignment{Substitutions: 2, Deletions: 1}},
		{"swap prefers substitutions", seq(1, 2), seq(2, 1), Alignment{Substitutions: 2}},
		{"token dropped mid-sequence", seq(1, 2, 3, 4, 5), seq(1, 2, 4, 5), Alignment{Deletions: 1}},
		{"token added mid-sequence", seq(1, 2, 4, 5), seq(1, 2, 3, 4, 5), Alignment{Insertions: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Align(tt.a, tt.b); got != tt.want {
				t.Errorf("Align = %+v, want %+v", got, tt.want)
			}
		})
	}
}
