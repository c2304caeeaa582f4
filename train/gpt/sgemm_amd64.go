//go:build !purego

package gpt

import "golang.org/x/sys/cpu"

// haveFMA selects the AVX2/FMA float32 matrix kernel; without it gemm falls
// back to gonum's pure-Go BLAS.
var haveFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func sgemm4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func sgemm4x8(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func expAVX2(dst, src []float32)

//go:noescape
func sgemmT4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func sgemmT4x8(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func sgemm6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func sgemmT6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func softmaxAVX2(x []float32, scale float32)

//go:noescape
func geluFwdAVX2(y, x []float32)

//go:noescape
func geluBwdAVX2(dx, x, g []float32)

//go:noescape
func colSumAVX2(out, g []float32, ld, rows int)

//go:noescape
func softmaxBackAVX2(p, d []float32, scale float32)
