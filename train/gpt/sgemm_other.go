//go:build !amd64 || purego

package gpt

const haveFMA = false

func sgemm4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable: sgemm4x16 needs amd64 with AVX2 and FMA")
}

func sgemm4x8(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable: sgemm4x8 needs amd64 with AVX2 and FMA")
}

func expAVX2(dst, src []float32) {
	panic("unreachable: expAVX2 needs amd64 with AVX2 and FMA")
}

func sgemmT4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable: sgemmT4x16 needs amd64 with AVX2 and FMA")
}

func sgemmT4x8(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable: sgemmT4x8 needs amd64 with AVX2 and FMA")
}

func sgemm6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable: sgemm6x16 needs amd64 with AVX2 and FMA")
}

func sgemmT6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable: sgemmT6x16 needs amd64 with AVX2 and FMA")
}

func softmaxAVX2(x []float32, scale float32) {
	panic("unreachable: softmaxAVX2 needs amd64 with AVX2 and FMA")
}

func geluFwdAVX2(y, x []float32) {
	panic("unreachable: geluFwdAVX2 needs amd64 with AVX2 and FMA")
}

func geluBwdAVX2(dx, x, g []float32) {
	panic("unreachable: geluBwdAVX2 needs amd64 with AVX2 and FMA")
}

func colSumAVX2(out, g []float32, ld, rows int) {
	panic("unreachable: colSumAVX2 needs amd64 with AVX2 and FMA")
}

func softmaxBackAVX2(p, d []float32, scale float32) {
	panic("unreachable: softmaxBackAVX2 needs amd64 with AVX2 and FMA")
}
