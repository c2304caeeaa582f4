package editdist

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/agnivade/levenshtein"
)

// benchPairs generates seeded chosen/rejected-like pairs: n tokens from a
// 50k vocabulary and a 5% rate of substitutions, insertions and deletions.
// The edits land at uniformly random positions over the whole sequence, so
// trimming the common prefix and suffix removes only the stretch before the
// first and after the last edit (about n/edits tokens) and the benchmark
// measures the core algorithm, not the trimming.
func benchPairs(n, count int) [][2][]int32 {
	r := rand.New(rand.NewPCG(uint64(n), 2402))
	pairs := make([][2][]int32, count)
	for i := range pairs {
		a := randSeq(r, n, 0, 50000)
		pairs[i] = [2][]int32{a, mutate(r, a, n/20, 0, 50000)}
	}
	return pairs
}

func reportPairs(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// BenchmarkDistance compares this package with agnivade/levenshtein (the
// cost includes mapping ids to runes and building strings, which a caller of
// a string API must do) and the plain dynamic programme.
func BenchmarkDistance(b *testing.B) {
	for _, n := range []int{200, 1000} {
		pairs := benchPairs(n, 256)
		b.Run(fmt.Sprintf("tokens=%d/editdist", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := pairs[i%len(pairs)]
				Distance(p[0], p[1])
			}
			reportPairs(b)
		})
		b.Run(fmt.Sprintf("tokens=%d/matcher", n), func(b *testing.B) {
			b.ReportAllocs()
			var m Matcher
			for i := 0; b.Loop(); i++ {
				p := pairs[i%len(pairs)]
				m.Distance(p[0], p[1])
			}
			reportPairs(b)
		})
		b.Run(fmt.Sprintf("tokens=%d/bounded15pct", n), func(b *testing.B) {
			// The pipeline's low_distance question: is the ratio <= 0.15?
			b.ReportAllocs()
			k := n * 15 / 100
			for i := 0; b.Loop(); i++ {
				p := pairs[i%len(pairs)]
				DistanceBounded(p[0], p[1], k)
			}
			reportPairs(b)
		})
		b.Run(fmt.Sprintf("tokens=%d/align", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := pairs[i%len(pairs)]
				Align(p[0], p[1])
			}
			reportPairs(b)
		})
		b.Run(fmt.Sprintf("tokens=%d/agnivade", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := pairs[i%len(pairs)]
				levenshtein.ComputeDistance(toString(p[0]), toString(p[1]))
			}
			reportPairs(b)
		})
		b.Run(fmt.Sprintf("tokens=%d/dp", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := pairs[i%len(pairs)]
				dpDistance(p[0], p[1])
			}
			reportPairs(b)
		})
	}
}
