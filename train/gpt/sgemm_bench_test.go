package gpt

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkSgemmShapes: the serial kernel driver on the training step's
// matmul shapes (d=64, 1536 rows), in GFLOP/s.
func BenchmarkSgemmShapes(b *testing.B) {
	if !haveFMA {
		b.Skip("no AVX2/FMA")
	}
	rng := rand.New(rand.NewSource(1))
	for _, s := range []struct {
		tA      bool
		m, n, k int
	}{{false, 1536, 192, 64}, {false, 1536, 256, 64}, {false, 1536, 64, 256}, {false, 1536, 64, 192}, {true, 64, 192, 1536}, {true, 256, 64, 1536}, {true, 64, 256, 1536}, {true, 258, 64, 1056}} {
		a, bb, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		for i := range bb {
			bb[i] = float32(rng.NormFloat64())
		}
		lda := s.k
		if s.tA {
			lda = s.m
		}
		b.Run(fmt.Sprintf("tA=%v/%dx%dx%d", s.tA, s.m, s.n, s.k), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sgemmSerial(s.tA, s.m, s.n, s.k, a, lda, bb, s.n, c, s.n)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
