//go:build !purego

#include "textflag.h"

// func sgemm4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)
//
// C[0:4, 0:16] += A[0:4, 0:k] · B[0:k, 0:16], all row-major with leading
// dimensions in elements. Eight YMM accumulators hold the 4×16 block of C;
// each step over k loads one 16-wide row of B and broadcasts one element of
// each of the four rows of A.
TEXT ·sgemm4x16(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10

	// Row pointers of C (DX, R11, R12, R13) and A (SI, R14, AX, BX).
	LEAQ (DX)(R10*1), R11
	LEAQ (R11)(R10*1), R12
	LEAQ (R12)(R10*1), R13
	LEAQ (SI)(R8*1), R14
	LEAQ (R14)(R8*1), AX
	LEAQ (AX)(R8*1), BX

	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS (R11), Y2
	VMOVUPS 32(R11), Y3
	VMOVUPS (R12), Y4
	VMOVUPS 32(R12), Y5
	VMOVUPS (R13), Y6
	VMOVUPS 32(R13), Y7

	TESTQ CX, CX
	JEQ   store

loop:
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS (R14), Y11
	VBROADCASTSS (AX), Y12
	VBROADCASTSS (BX), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         $4, SI
	ADDQ         $4, R14
	ADDQ         $4, AX
	ADDQ         $4, BX
	ADDQ         R9, DI
	DECQ         CX
	JNE          loop

store:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (R11)
	VMOVUPS Y3, 32(R11)
	VMOVUPS Y4, (R12)
	VMOVUPS Y5, 32(R12)
	VMOVUPS Y6, (R13)
	VMOVUPS Y7, 32(R13)
	VZEROUPPER
	RET

// func sgemm4x8(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)
//
// As sgemm4x16 for an 8-wide block of C (column tails, head_dim 8).
TEXT ·sgemm4x8(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10

	LEAQ (DX)(R10*1), R11
	LEAQ (R11)(R10*1), R12
	LEAQ (R12)(R10*1), R13
	LEAQ (SI)(R8*1), R14
	LEAQ (R14)(R8*1), AX
	LEAQ (AX)(R8*1), BX

	VMOVUPS (DX), Y0
	VMOVUPS (R11), Y2
	VMOVUPS (R12), Y4
	VMOVUPS (R13), Y6

	TESTQ CX, CX
	JEQ   store8

loop8:
	VMOVUPS      (DI), Y8
	VBROADCASTSS (SI), Y10
	VBROADCASTSS (R14), Y11
	VBROADCASTSS (AX), Y12
	VBROADCASTSS (BX), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y8, Y13, Y6
	ADDQ         $4, SI
	ADDQ         $4, R14
	ADDQ         $4, AX
	ADDQ         $4, BX
	ADDQ         R9, DI
	DECQ         CX
	JNE          loop8

store8:
	VMOVUPS Y0, (DX)
	VMOVUPS Y2, (R11)
	VMOVUPS Y4, (R12)
	VMOVUPS Y6, (R13)
	VZEROUPPER
	RET

// Constants of expf (see attention_fma.go), one float32 bit pattern each.
DATA expc<>+0(SB)/4, $0x42b00000  // 88
DATA expc<>+4(SB)/4, $0xc2aeac4f  // -87.33654
DATA expc<>+8(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+12(SB)/4, $0x3f318000 // ln2 high part
DATA expc<>+16(SB)/4, $0xb95e8083 // ln2 low part
DATA expc<>+20(SB)/4, $0x39506967 // p0
DATA expc<>+24(SB)/4, $0x3ab743ce // p1
DATA expc<>+28(SB)/4, $0x3c088908 // p2
DATA expc<>+32(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+36(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+40(SB)/4, $0x3f000000 // p5
DATA expc<>+44(SB)/4, $0x3f800000 // 1
DATA expc<>+48(SB)/4, $0x0000007f // exponent bias 127
GLOBL expc<>(SB), RODATA|NOPTR, $52

// func expAVX2(dst, src []float32)
//
// dst[i] = e^src[i] for the first len(src)/8*8 elements, eight at a time, with
// the same range reduction and polynomial as expf; inputs are clamped to
// [-87.34, 88] (e^-87.34 is the smallest normal float32).
TEXT ·expAVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	SHRQ $3, CX
	JEQ  done

	VBROADCASTSS expc<>+0(SB), Y5
	VBROADCASTSS expc<>+4(SB), Y6
	VBROADCASTSS expc<>+8(SB), Y7
	VBROADCASTSS expc<>+12(SB), Y8
	VBROADCASTSS expc<>+16(SB), Y9
	VBROADCASTSS expc<>+20(SB), Y10
	VBROADCASTSS expc<>+24(SB), Y11
	VBROADCASTSS expc<>+28(SB), Y12
	VBROADCASTSS expc<>+32(SB), Y13
	VBROADCASTSS expc<>+36(SB), Y14
	VBROADCASTSS expc<>+40(SB), Y15

loop:
	VMOVUPS     (SI), Y0
	VMINPS      Y5, Y0, Y0
	VMAXPS      Y6, Y0, Y0
	VMULPS      Y7, Y0, Y1     // x·log2(e)
	VROUNDPS    $0, Y1, Y1     // n = round to nearest
	VMOVAPS     Y0, Y2
	VFNMADD231PS Y8, Y1, Y2    // r = x − n·ln2hi
	VFNMADD231PS Y9, Y1, Y2    // r −= n·ln2lo
	VMOVAPS     Y10, Y3
	VFMADD213PS Y11, Y2, Y3    // y = y·r + p1
	VFMADD213PS Y12, Y2, Y3
	VFMADD213PS Y13, Y2, Y3
	VFMADD213PS Y14, Y2, Y3
	VFMADD213PS Y15, Y2, Y3
	VMULPS      Y2, Y2, Y4     // r²
	VFMADD213PS Y2, Y4, Y3     // y = y·r² + r
	VBROADCASTSS expc<>+44(SB), Y4
	VADDPS      Y4, Y3, Y3     // y += 1
	VCVTPS2DQ   Y1, Y1         // 2ⁿ: (n + 127) << 23
	VPBROADCASTD expc<>+48(SB), Y4
	VPADDD      Y4, Y1, Y1
	VPSLLD      $23, Y1, Y1
	VMULPS      Y1, Y3, Y3
	VMOVUPS     Y3, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        CX
	JNE         loop

done:
	VZEROUPPER
	RET

// func sgemmT4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)
//
// C[0:4, 0:16] += Aᵀ[0:4, 0:k] · B[0:k, 0:16] where A is stored k×lda
// row-major: the four A values of step p are contiguous at a[p·lda : p·lda+4],
// so Aᵀ·B needs no transposed copy.
TEXT ·sgemmT4x16(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10

	LEAQ (DX)(R10*1), R11
	LEAQ (R11)(R10*1), R12
	LEAQ (R12)(R10*1), R13

	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS (R11), Y2
	VMOVUPS 32(R11), Y3
	VMOVUPS (R12), Y4
	VMOVUPS 32(R12), Y5
	VMOVUPS (R13), Y6
	VMOVUPS 32(R13), Y7

	TESTQ CX, CX
	JEQ   storeT

loopT:
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS 4(SI), Y11
	VBROADCASTSS 8(SI), Y12
	VBROADCASTSS 12(SI), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         R8, SI
	ADDQ         R9, DI
	DECQ         CX
	JNE          loopT

storeT:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (R11)
	VMOVUPS Y3, 32(R11)
	VMOVUPS Y4, (R12)
	VMOVUPS Y5, 32(R12)
	VMOVUPS Y6, (R13)
	VMOVUPS Y7, 32(R13)
	VZEROUPPER
	RET

// func sgemmT4x8(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)
TEXT ·sgemmT4x8(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10

	LEAQ (DX)(R10*1), R11
	LEAQ (R11)(R10*1), R12
	LEAQ (R12)(R10*1), R13

	VMOVUPS (DX), Y0
	VMOVUPS (R11), Y2
	VMOVUPS (R12), Y4
	VMOVUPS (R13), Y6

	TESTQ CX, CX
	JEQ   storeT8

loopT8:
	VMOVUPS      (DI), Y8
	VBROADCASTSS (SI), Y10
	VBROADCASTSS 4(SI), Y11
	VBROADCASTSS 8(SI), Y12
	VBROADCASTSS 12(SI), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y8, Y13, Y6
	ADDQ         R8, SI
	ADDQ         R9, DI
	DECQ         CX
	JNE          loopT8

storeT8:
	VMOVUPS Y0, (DX)
	VMOVUPS Y2, (R11)
	VMOVUPS Y4, (R12)
	VMOVUPS Y6, (R13)
	VZEROUPPER
	RET

// func sgemm6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)
//
// C[0:6, 0:16] += A[0:6, 0:k] · B[0:k, 0:16]: twelve accumulators, enough
// independent FMAs to cover their latency on two FMA pipes (4×16 has eight).
TEXT ·sgemm6x16(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10

	// A rows 0..2 at SI, SI+lda, SI+2·lda; rows 3..5 the same from R12.
	LEAQ (SI)(R8*2), R12
	ADDQ R8, R12
	// C rows 0..2 at DX, DX+ldc, DX+2·ldc; rows 3..5 the same from R13.
	LEAQ (DX)(R10*2), R13
	ADDQ R10, R13

	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS (DX)(R10*1), Y2
	VMOVUPS 32(DX)(R10*1), Y3
	VMOVUPS (DX)(R10*2), Y4
	VMOVUPS 32(DX)(R10*2), Y5
	VMOVUPS (R13), Y6
	VMOVUPS 32(R13), Y7
	VMOVUPS (R13)(R10*1), Y8
	VMOVUPS 32(R13)(R10*1), Y9
	VMOVUPS (R13)(R10*2), Y10
	VMOVUPS 32(R13)(R10*2), Y11

	TESTQ CX, CX
	JEQ   store6

loop6:
	VMOVUPS      (DI), Y12
	VMOVUPS      32(DI), Y13
	VBROADCASTSS (SI), Y14
	VBROADCASTSS (SI)(R8*1), Y15
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS (SI)(R8*2), Y14
	VBROADCASTSS (R12), Y15
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS (R12)(R8*1), Y14
	VBROADCASTSS (R12)(R8*2), Y15
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         $4, SI
	ADDQ         $4, R12
	ADDQ         R9, DI
	DECQ         CX
	JNE          loop6

store6:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (DX)(R10*1)
	VMOVUPS Y3, 32(DX)(R10*1)
	VMOVUPS Y4, (DX)(R10*2)
	VMOVUPS Y5, 32(DX)(R10*2)
	VMOVUPS Y6, (R13)
	VMOVUPS Y7, 32(R13)
	VMOVUPS Y8, (R13)(R10*1)
	VMOVUPS Y9, 32(R13)(R10*1)
	VMOVUPS Y10, (R13)(R10*2)
	VMOVUPS Y11, 32(R13)(R10*2)
	VZEROUPPER
	RET

// func sgemmT6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)
//
// As sgemm6x16 for C += Aᵀ·B with A stored k×lda (six contiguous values per step).
TEXT ·sgemmT6x16(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R9
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10

	LEAQ (DX)(R10*2), R13
	ADDQ R10, R13

	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS (DX)(R10*1), Y2
	VMOVUPS 32(DX)(R10*1), Y3
	VMOVUPS (DX)(R10*2), Y4
	VMOVUPS 32(DX)(R10*2), Y5
	VMOVUPS (R13), Y6
	VMOVUPS 32(R13), Y7
	VMOVUPS (R13)(R10*1), Y8
	VMOVUPS 32(R13)(R10*1), Y9
	VMOVUPS (R13)(R10*2), Y10
	VMOVUPS 32(R13)(R10*2), Y11

	TESTQ CX, CX
	JEQ   storeT6

loopT6:
	VMOVUPS      (DI), Y12
	VMOVUPS      32(DI), Y13
	VBROADCASTSS (SI), Y14
	VBROADCASTSS 4(SI), Y15
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 8(SI), Y14
	VBROADCASTSS 12(SI), Y15
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 16(SI), Y14
	VBROADCASTSS 20(SI), Y15
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         R8, SI
	ADDQ         R9, DI
	DECQ         CX
	JNE          loopT6

storeT6:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (DX)(R10*1)
	VMOVUPS Y3, 32(DX)(R10*1)
	VMOVUPS Y4, (DX)(R10*2)
	VMOVUPS Y5, 32(DX)(R10*2)
	VMOVUPS Y6, (R13)
	VMOVUPS Y7, 32(R13)
	VMOVUPS Y8, (R13)(R10*1)
	VMOVUPS Y9, 32(R13)(R10*1)
	VMOVUPS Y10, (R13)(R10*2)
	VMOVUPS Y11, 32(R13)(R10*2)
	VZEROUPPER
	RET
