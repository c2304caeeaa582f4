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

// expv holds expc's constants (and gelu's) each replicated eight times, so
// the kernels below can use them as memory operands and keep registers free.
DATA expv<>+0(SB)/4, $0x42b00000 // min-clamp 88
DATA expv<>+4(SB)/4, $0x42b00000
DATA expv<>+8(SB)/4, $0x42b00000
DATA expv<>+12(SB)/4, $0x42b00000
DATA expv<>+16(SB)/4, $0x42b00000
DATA expv<>+20(SB)/4, $0x42b00000
DATA expv<>+24(SB)/4, $0x42b00000
DATA expv<>+28(SB)/4, $0x42b00000
DATA expv<>+32(SB)/4, $0xc2aeac4f // max-clamp -87.33654
DATA expv<>+36(SB)/4, $0xc2aeac4f
DATA expv<>+40(SB)/4, $0xc2aeac4f
DATA expv<>+44(SB)/4, $0xc2aeac4f
DATA expv<>+48(SB)/4, $0xc2aeac4f
DATA expv<>+52(SB)/4, $0xc2aeac4f
DATA expv<>+56(SB)/4, $0xc2aeac4f
DATA expv<>+60(SB)/4, $0xc2aeac4f
DATA expv<>+64(SB)/4, $0x3fb8aa3b // log2(e)
DATA expv<>+68(SB)/4, $0x3fb8aa3b
DATA expv<>+72(SB)/4, $0x3fb8aa3b
DATA expv<>+76(SB)/4, $0x3fb8aa3b
DATA expv<>+80(SB)/4, $0x3fb8aa3b
DATA expv<>+84(SB)/4, $0x3fb8aa3b
DATA expv<>+88(SB)/4, $0x3fb8aa3b
DATA expv<>+92(SB)/4, $0x3fb8aa3b
DATA expv<>+96(SB)/4, $0x3f318000 // ln2 high
DATA expv<>+100(SB)/4, $0x3f318000
DATA expv<>+104(SB)/4, $0x3f318000
DATA expv<>+108(SB)/4, $0x3f318000
DATA expv<>+112(SB)/4, $0x3f318000
DATA expv<>+116(SB)/4, $0x3f318000
DATA expv<>+120(SB)/4, $0x3f318000
DATA expv<>+124(SB)/4, $0x3f318000
DATA expv<>+128(SB)/4, $0xb95e8083 // ln2 low
DATA expv<>+132(SB)/4, $0xb95e8083
DATA expv<>+136(SB)/4, $0xb95e8083
DATA expv<>+140(SB)/4, $0xb95e8083
DATA expv<>+144(SB)/4, $0xb95e8083
DATA expv<>+148(SB)/4, $0xb95e8083
DATA expv<>+152(SB)/4, $0xb95e8083
DATA expv<>+156(SB)/4, $0xb95e8083
DATA expv<>+160(SB)/4, $0x39506967 // p0
DATA expv<>+164(SB)/4, $0x39506967
DATA expv<>+168(SB)/4, $0x39506967
DATA expv<>+172(SB)/4, $0x39506967
DATA expv<>+176(SB)/4, $0x39506967
DATA expv<>+180(SB)/4, $0x39506967
DATA expv<>+184(SB)/4, $0x39506967
DATA expv<>+188(SB)/4, $0x39506967
DATA expv<>+192(SB)/4, $0x3ab743ce // p1
DATA expv<>+196(SB)/4, $0x3ab743ce
DATA expv<>+200(SB)/4, $0x3ab743ce
DATA expv<>+204(SB)/4, $0x3ab743ce
DATA expv<>+208(SB)/4, $0x3ab743ce
DATA expv<>+212(SB)/4, $0x3ab743ce
DATA expv<>+216(SB)/4, $0x3ab743ce
DATA expv<>+220(SB)/4, $0x3ab743ce
DATA expv<>+224(SB)/4, $0x3c088908 // p2
DATA expv<>+228(SB)/4, $0x3c088908
DATA expv<>+232(SB)/4, $0x3c088908
DATA expv<>+236(SB)/4, $0x3c088908
DATA expv<>+240(SB)/4, $0x3c088908
DATA expv<>+244(SB)/4, $0x3c088908
DATA expv<>+248(SB)/4, $0x3c088908
DATA expv<>+252(SB)/4, $0x3c088908
DATA expv<>+256(SB)/4, $0x3d2aa9c1 // p3
DATA expv<>+260(SB)/4, $0x3d2aa9c1
DATA expv<>+264(SB)/4, $0x3d2aa9c1
DATA expv<>+268(SB)/4, $0x3d2aa9c1
DATA expv<>+272(SB)/4, $0x3d2aa9c1
DATA expv<>+276(SB)/4, $0x3d2aa9c1
DATA expv<>+280(SB)/4, $0x3d2aa9c1
DATA expv<>+284(SB)/4, $0x3d2aa9c1
DATA expv<>+288(SB)/4, $0x3e2aaaaa // p4
DATA expv<>+292(SB)/4, $0x3e2aaaaa
DATA expv<>+296(SB)/4, $0x3e2aaaaa
DATA expv<>+300(SB)/4, $0x3e2aaaaa
DATA expv<>+304(SB)/4, $0x3e2aaaaa
DATA expv<>+308(SB)/4, $0x3e2aaaaa
DATA expv<>+312(SB)/4, $0x3e2aaaaa
DATA expv<>+316(SB)/4, $0x3e2aaaaa
DATA expv<>+320(SB)/4, $0x3f000000 // p5
DATA expv<>+324(SB)/4, $0x3f000000
DATA expv<>+328(SB)/4, $0x3f000000
DATA expv<>+332(SB)/4, $0x3f000000
DATA expv<>+336(SB)/4, $0x3f000000
DATA expv<>+340(SB)/4, $0x3f000000
DATA expv<>+344(SB)/4, $0x3f000000
DATA expv<>+348(SB)/4, $0x3f000000
DATA expv<>+352(SB)/4, $0x3f800000 // 1
DATA expv<>+356(SB)/4, $0x3f800000
DATA expv<>+360(SB)/4, $0x3f800000
DATA expv<>+364(SB)/4, $0x3f800000
DATA expv<>+368(SB)/4, $0x3f800000
DATA expv<>+372(SB)/4, $0x3f800000
DATA expv<>+376(SB)/4, $0x3f800000
DATA expv<>+380(SB)/4, $0x3f800000
DATA expv<>+384(SB)/4, $0x0000007f // 127 (int)
DATA expv<>+388(SB)/4, $0x0000007f
DATA expv<>+392(SB)/4, $0x0000007f
DATA expv<>+396(SB)/4, $0x0000007f
DATA expv<>+400(SB)/4, $0x0000007f
DATA expv<>+404(SB)/4, $0x0000007f
DATA expv<>+408(SB)/4, $0x0000007f
DATA expv<>+412(SB)/4, $0x0000007f
DATA expv<>+416(SB)/4, $0x3d372713 // 0.044715
DATA expv<>+420(SB)/4, $0x3d372713
DATA expv<>+424(SB)/4, $0x3d372713
DATA expv<>+428(SB)/4, $0x3d372713
DATA expv<>+432(SB)/4, $0x3d372713
DATA expv<>+436(SB)/4, $0x3d372713
DATA expv<>+440(SB)/4, $0x3d372713
DATA expv<>+444(SB)/4, $0x3d372713
DATA expv<>+448(SB)/4, $0x3fcc422a // 2*sqrt(2/pi)
DATA expv<>+452(SB)/4, $0x3fcc422a
DATA expv<>+456(SB)/4, $0x3fcc422a
DATA expv<>+460(SB)/4, $0x3fcc422a
DATA expv<>+464(SB)/4, $0x3fcc422a
DATA expv<>+468(SB)/4, $0x3fcc422a
DATA expv<>+472(SB)/4, $0x3fcc422a
DATA expv<>+476(SB)/4, $0x3fcc422a
DATA expv<>+480(SB)/4, $0x3e095d4f // 3*0.044715
DATA expv<>+484(SB)/4, $0x3e095d4f
DATA expv<>+488(SB)/4, $0x3e095d4f
DATA expv<>+492(SB)/4, $0x3e095d4f
DATA expv<>+496(SB)/4, $0x3e095d4f
DATA expv<>+500(SB)/4, $0x3e095d4f
DATA expv<>+504(SB)/4, $0x3e095d4f
DATA expv<>+508(SB)/4, $0x3e095d4f
GLOBL expv<>(SB), RODATA|NOPTR, $512

// EXP8: Y3 = e^Y0 (Y0 clobbered; Y1, Y2, Y4 scratch), as expAVX2.
#define EXP8 \
	VMINPS       expv<>+0(SB), Y0, Y0; \
	VMAXPS       expv<>+32(SB), Y0, Y0; \
	VMULPS       expv<>+64(SB), Y0, Y1; \
	VROUNDPS     $0, Y1, Y1; \
	VMOVAPS      Y0, Y2; \
	VFNMADD231PS expv<>+96(SB), Y1, Y2; \
	VFNMADD231PS expv<>+128(SB), Y1, Y2; \
	VMOVUPS      expv<>+160(SB), Y3; \
	VFMADD213PS  expv<>+192(SB), Y2, Y3; \
	VFMADD213PS  expv<>+224(SB), Y2, Y3; \
	VFMADD213PS  expv<>+256(SB), Y2, Y3; \
	VFMADD213PS  expv<>+288(SB), Y2, Y3; \
	VFMADD213PS  expv<>+320(SB), Y2, Y3; \
	VMULPS       Y2, Y2, Y4; \
	VFMADD213PS  Y2, Y4, Y3; \
	VADDPS       expv<>+352(SB), Y3, Y3; \
	VCVTPS2DQ    Y1, Y1; \
	VPADDD       expv<>+384(SB), Y1, Y1; \
	VPSLLD       $23, Y1, Y1; \
	VMULPS       Y1, Y3, Y3

// func softmaxAVX2(x []float32, scale float32)
//
// x = softmax(scale·x) in place, len(x) a multiple of 8: max, then
// e^(scale·(x−max)) with the running sum, then the normalisation.
TEXT ·softmaxAVX2(SB), NOSPLIT, $0-28
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	SHRQ $3, CX
	JEQ  sdone
	MOVQ SI, DI
	MOVQ CX, DX
	VMOVUPS (SI), Y5
	ADDQ    $32, SI
	DECQ    CX
	JEQ     smaxred

smax:
	VMAXPS (SI), Y5, Y5
	ADDQ   $32, SI
	DECQ   CX
	JNE    smax

smaxred:
	VEXTRACTF128 $1, Y5, X0
	VMAXPS       X0, X5, X5
	VPERMILPS    $0x4E, X5, X0
	VMAXPS       X0, X5, X5
	VPERMILPS    $0xB1, X5, X0
	VMAXPS       X0, X5, X5
	VBROADCASTSS X5, Y6
	VBROADCASTSS scale+24(FP), Y7
	VXORPS       Y5, Y5, Y5
	MOVQ         DI, SI
	MOVQ         DX, CX

sexp:
	VMOVUPS (SI), Y0
	VSUBPS  Y6, Y0, Y0
	VMULPS  Y7, Y0, Y0
	EXP8
	VMOVUPS Y3, (SI)
	VADDPS  Y3, Y5, Y5
	ADDQ    $32, SI
	DECQ    CX
	JNE     sexp

	VEXTRACTF128 $1, Y5, X0
	VADDPS       X0, X5, X5
	VPERMILPS    $0x4E, X5, X0
	VADDPS       X0, X5, X5
	VPERMILPS    $0xB1, X5, X0
	VADDPS       X0, X5, X5
	VMOVSS       expv<>+352(SB), X0
	VDIVSS       X5, X0, X0
	VBROADCASTSS X0, Y0
	MOVQ         DI, SI
	MOVQ         DX, CX

snorm:
	VMULPS  (SI), Y0, Y1
	VMOVUPS Y1, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNE     snorm

sdone:
	VZEROUPPER
	RET

// func geluFwdAVX2(y, x []float32)
//
// y = x·s with s = e/(e+1), e = e^(2·√(2/π)·(x + 0.044715·x³)), for the
// first len(x)/8*8 elements (as geluFMA).
TEXT ·geluFwdAVX2(SB), NOSPLIT, $0-48
	MOVQ y_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	SHRQ $3, CX
	JEQ  gfdone

gfloop:
	VMOVUPS (SI), Y5
	VMULPS  Y5, Y5, Y0
	VMULPS  expv<>+416(SB), Y0, Y0
	VADDPS  expv<>+352(SB), Y0, Y0
	VMULPS  Y5, Y0, Y0
	VMULPS  expv<>+448(SB), Y0, Y0
	EXP8
	VADDPS  expv<>+352(SB), Y3, Y4
	VDIVPS  Y4, Y3, Y3
	VMULPS  Y5, Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNE     gfloop

gfdone:
	VZEROUPPER
	RET

// func geluBwdAVX2(dx, x, g []float32)
//
// dx = g·(s + 2·x·s/(e+1)·√(2/π)·(1 + 3·0.044715·x²)), e and s as in
// geluFwdAVX2, for the first len(x)/8*8 elements.
TEXT ·geluBwdAVX2(SB), NOSPLIT, $0-72
	MOVQ dx_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	MOVQ g_base+48(FP), DX
	SHRQ $3, CX
	JEQ  gbdone

gbloop:
	VMOVUPS (SI), Y5
	VMULPS  Y5, Y5, Y6
	VMULPS  expv<>+416(SB), Y6, Y0
	VADDPS  expv<>+352(SB), Y0, Y0
	VMULPS  Y5, Y0, Y0
	VMULPS  expv<>+448(SB), Y0, Y0
	EXP8
	VADDPS  expv<>+352(SB), Y3, Y4
	VMOVUPS expv<>+352(SB), Y9
	VDIVPS  Y4, Y9, Y9
	VMULPS  Y9, Y3, Y8
	VMULPS  expv<>+480(SB), Y6, Y6
	VADDPS  expv<>+352(SB), Y6, Y6
	VMULPS  Y5, Y6, Y6
	VMULPS  Y8, Y6, Y6
	VMULPS  Y9, Y6, Y6
	VMULPS  expv<>+448(SB), Y6, Y6
	VADDPS  Y8, Y6, Y6
	VMULPS  (DX), Y6, Y6
	VMOVUPS Y6, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	ADDQ    $32, DX
	DECQ    CX
	JNE     gbloop

gbdone:
	VZEROUPPER
	RET

// func colSumAVX2(out, g []float32, ld, rows int)
//
// out[j] += Σ_{r<rows} g[r·ld + j] for j < len(out), a multiple of 8; each
// column is summed in row order. Four accumulators per 32 columns.
TEXT ·colSumAVX2(SB), NOSPLIT, $0-64
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), BX
	MOVQ g_base+24(FP), SI
	MOVQ ld+48(FP), R8
	SHLQ $2, R8
	MOVQ rows+56(FP), R9
	TESTQ R9, R9
	JEQ  csdone

cs32:
	CMPQ    BX, $32
	JLT     cs8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ    SI, AX
	MOVQ    R9, CX

cs32r:
	VADDPS (AX), Y0, Y0
	VADDPS 32(AX), Y1, Y1
	VADDPS 64(AX), Y2, Y2
	VADDPS 96(AX), Y3, Y3
	ADDQ   R8, AX
	DECQ   CX
	JNE    cs32r

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	SUBQ    $32, BX
	JMP     cs32

cs8:
	CMPQ    BX, $8
	JLT     csdone
	VMOVUPS (DI), Y0
	MOVQ    SI, AX
	MOVQ    R9, CX

cs8r:
	VADDPS (AX), Y0, Y0
	ADDQ   R8, AX
	DECQ   CX
	JNE    cs8r

	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	SUBQ    $8, BX
	JMP     cs8

csdone:
	VZEROUPPER
	RET

// func softmaxBackAVX2(p, d []float32, scale float32)
//
// d = p∘(d − Σ p∘d)·scale, the softmax backward of one row, len(p) = len(d)
// a multiple of 8.
TEXT ·softmaxBackAVX2(SB), NOSPLIT, $0-52
	MOVQ p_base+0(FP), SI
	MOVQ p_len+8(FP), CX
	MOVQ d_base+24(FP), DI
	SHRQ $3, CX
	JEQ  sbdone
	MOVQ SI, R8
	MOVQ DI, R9
	MOVQ CX, DX
	VXORPS Y0, Y0, Y0

sbdot:
	VMOVUPS     (SI), Y2
	VFMADD231PS (DI), Y2, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        CX
	JNE         sbdot

	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x4E, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xB1, X0, X1
	VADDPS       X1, X0, X0
	VBROADCASTSS X0, Y0
	VBROADCASTSS scale+48(FP), Y3
	MOVQ         R8, SI
	MOVQ         R9, DI
	MOVQ         DX, CX

sbmul:
	VMOVUPS (DI), Y1
	VSUBPS  Y0, Y1, Y1
	VMULPS  (SI), Y1, Y1
	VMULPS  Y3, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNE     sbmul

sbdone:
	VZEROUPPER
	RET
