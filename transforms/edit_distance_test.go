package transforms

import (
	"math/rand/v2"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
)

// levenshteinDP is the textbook dynamic programme, the reference the fast
// implementation is checked against.
func levenshteinDP(a, b []int32) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func TestMeasureEdits(t *testing.T) {
	tests := []struct {
		name             string
		chosen, rejected []int32
		dist             int32
		ratio            float32
		first            int32
		low              bool
	}{
		{"equal", []int32{1, 2, 3, 256}, []int32{1, 2, 3, 256}, 0, 0, -1, true},
		{"one substitution in 20: exactly at 0.15 needs 3", []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 256},
			[]int32{1, 2, 9, 4, 5, 6, 9, 8, 9, 10, 11, 9, 13, 14, 15, 16, 17, 18, 19, 256}, 3, 0.15, 2, true},
		{"prefix", []int32{1, 2, 256}, []int32{1, 2, 3, 4, 256}, 2, 0.4, 2, false},
		{"disjoint", []int32{1, 2}, []int32{3, 4, 5}, 3, 1, 0, false},
		{"empty", nil, nil, 0, 0, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := schemas.Row{ChosenIDs: tt.chosen, RejectedIDs: tt.rejected}
			MeasureEdits(&r, 0.15)
			if r.EditDistance != tt.dist || r.EditRatio != tt.ratio || r.FirstDiff != tt.first || r.LowDistance != tt.low {
				t.Errorf("got (%d, %g, %d, %v), want (%d, %g, %d, %v)",
					r.EditDistance, r.EditRatio, r.FirstDiff, r.LowDistance, tt.dist, tt.ratio, tt.first, tt.low)
			}
		})
	}
}

func TestMeasureEditsAgreesWithDP(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		a := make([]int32, rng.IntN(120))
		for i := range a {
			a[i] = rng.Int32N(6) // a small alphabet makes many matches
		}
		b := append([]int32(nil), a...)
		for range rng.IntN(10) {
			if len(b) == 0 {
				break
			}
			b[rng.IntN(len(b))] = rng.Int32N(6)
		}
		if rng.IntN(2) == 0 {
			b = b[:rng.IntN(len(b)+1)]
		}
		r := schemas.Row{ChosenIDs: a, RejectedIDs: b}
		MeasureEdits(&r, 0.15)
		if want := levenshteinDP(a, b); int(r.EditDistance) != want {
			t.Fatalf("distance(%v, %v) = %d, DP %d", a, b, r.EditDistance, want)
		}
	}
}
