package gpt

// A float32 matrix multiply built on the 6×16, 4×16 and 4×8 AVX2/FMA micro-kernels
// in sgemm_amd64.s. At this project's sizes (k and n of 8–1536) gonum's
// pure-Go Sgemm spent most of a training step; the micro-kernels keep a block
// of C in registers, which makes matmuls several times faster.

// sgemmFast computes C = op(A)·op(B) + beta·C for beta 0 or 1, splitting rows
// of C over goroutines. Transposed operands are copied into row-major scratch
// first: O(size), small next to the O(m·n·k) product.
func sgemmFast(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 || k == 0 {
		if beta == 0 {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if tB {
		b, ldb = transpose(nil, b, n, k, ldb), n
	}
	// Split rows in multiples of 6, the micro-kernel's height, so only the
	// last worker can have leftover rows for the slow scalar path.
	blocks := (m + 5) / 6
	minBlocks := max(1, (1<<16)/(6*n*k)) // ≥ 64k multiply-adds per goroutine
	parallelFor(blocks, minBlocks, func(lo, hi int) {
		i0, i1 := lo*6, min(hi*6, m)
		if beta == 0 { // each worker clears its own rows, in parallel
			for i := i0; i < i1; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		if tA {
			sgemmTN(i1-i0, n, k, a[i0:], lda, b, ldb, c[i0*ldc:], ldc)
		} else {
			sgemmNN(i1-i0, n, k, a[i0*lda:], lda, b, ldb, c[i0*ldc:], ldc)
		}
	})
}

// sgemmNN: C += A·B, row-major, on the calling goroutine.
func sgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	sgemmSerial(false, m, n, k, a, lda, b, ldb, c, ldc)
}

// sgemmTN: C += Aᵀ·B with A stored k×m (leading dimension lda).
func sgemmTN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	sgemmSerial(true, m, n, k, a, lda, b, ldb, c, ldc)
}

// sgemmKC is the slice of k that sgemmSerial sums at a time when k is long
// (measured on the weight-gradient shapes, k = 1536: 128 is 20–40% faster
// than no slicing; short k is left whole).
const sgemmKC = 128

func sgemmSerial(tA bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	if k > 2*sgemmKC {
		// Long sums (weight gradients, k = rows of the batch): in slices of
		// k, so that a 16-wide panel of B and the current rows of A stay in
		// L1 while the kernel sweeps them.
		for p0 := 0; p0 < k; p0 += sgemmKC {
			ao := p0
			if tA {
				ao = p0 * lda
			}
			sgemmSerial(tA, m, n, min(sgemmKC, k-p0), a[ao:], lda, b[p0*ldb:], ldb, c, ldc)
		}
		return
	}
	// at(i, p) is the offset of op(A)[i, p].
	at := func(i, p int) int { return i*lda + p }
	k6, k4, k8 := sgemm6x16, sgemm4x16, sgemm4x8
	if tA {
		at = func(i, p int) int { return p*lda + i }
		k6, k4, k8 = sgemmT6x16, sgemmT4x16, sgemmT4x8
	}
	m6 := m / 6 * 6
	// scalar covers C[i0:i1, j0:j1] where the kernels' blocks don't fit.
	scalar := func(i0, i1, j0, j1 int) {
		switch {
		case j0 >= j1:
			return // else the loops below would spin m·k times doing nothing
		case j1-j0 < 8 && !tA: // a few columns (vocab 258 = 16·16 + 2): one dot each
			var col [8][]float32
			buf := make([]float32, (j1-j0)*k)
			for j := j0; j < j1; j++ {
				cj := buf[(j-j0)*k : (j-j0+1)*k]
				for p := range cj {
					cj[p] = b[p*ldb+j]
				}
				col[j-j0] = cj
			}
			for i := i0; i < i1; i++ {
				ai := a[i*lda : i*lda+k]
				for j := j0; j < j1; j++ {
					c[i*ldc+j] += dot(ai, col[j-j0])
				}
			}
		case j1-j0 < 8:
			for i := i0; i < i1; i++ {
				for j := j0; j < j1; j++ {
					var sum float32
					for p := 0; p < k; p++ {
						sum += a[at(i, p)] * b[p*ldb+j]
					}
					c[i*ldc+j] += sum
				}
			}
		default: // a few rows: row-wise axpy
			for i := i0; i < i1; i++ {
				ci := c[i*ldc+j0 : i*ldc+j1]
				for p := 0; p < k; p++ {
					axpy(a[at(i, p)], b[p*ldb+j0:p*ldb+j1], ci)
				}
			}
		}
	}
	// 16-wide column panels (outer, so a panel of B stays in cache), rows in
	// blocks of 6 (16% faster than 4 here, measured), then of 4.
	m16 := m6
	for m-m16 >= 4 {
		m16 += 4
	}
	if r := m - m16; r > 0 && n >= 8 && k >= 16 {
		// 1–3 leftover rows: pad them to a 4-row block in scratch so the
		// kernels do them too (the scalar path below is ~10× slower per
		// multiply-add, and with k in the thousands, as in weight gradients,
		// it dominated).
		pa := make([]float32, 4*k+4*n)
		pc := pa[4*k:]
		for i := 0; i < r; i++ {
			for p := 0; p < k; p++ {
				pa[i*k+p] = a[at(m16+i, p)]
			}
		}
		sgemmSerial(false, 4, n, k, pa, k, b, ldb, pc, n)
		for i := 0; i < r; i++ {
			axpy(1, pc[i*n:(i+1)*n], c[(m16+i)*ldc:(m16+i)*ldc+n])
		}
		m = m16
	}
	n16 := n / 16 * 16
	for j := 0; j < n16; j += 16 {
		for i := 0; i < m6; i += 6 {
			k6(k, &a[at(i, 0)], lda, &b[j], ldb, &c[i*ldc+j], ldc)
		}
		for i := m6; i < m16; i += 4 {
			k4(k, &a[at(i, 0)], lda, &b[j], ldb, &c[i*ldc+j], ldc)
		}
	}
	scalar(m16, m, 0, n16)
	j := n16
	if n-j >= 8 {
		m4 := m / 4 * 4
		for i := 0; i < m4; i += 4 {
			k8(k, &a[at(i, 0)], lda, &b[j], ldb, &c[i*ldc+j], ldc)
		}
		scalar(m4, m, j, j+8)
		j += 8
	}
	scalar(0, m, j, n)
}

// transpose writes the cols×rows row-major transpose of the rows×cols matrix
// x (leading dimension ld) into dst, reallocated if too short, and returns it.
func transpose(dst, x []float32, rows, cols, ld int) []float32 {
	if cap(dst) < rows*cols {
		dst = make([]float32, rows*cols)
	}
	dst = dst[:rows*cols]
	// Strips of columns (all of them when small, as attention's K and V
	// are: both sides then fit in L1), each swept down the source rows four
	// at a time, so reads are contiguous and writes go to a few dst rows.
	strip := cols
	if rows*cols > 64*64 {
		strip = 32
	}
	for j0 := 0; j0 < cols; j0 += strip {
		n := min(strip, cols-j0)
		i := 0
		for ; i+4 <= rows; i += 4 {
			r0 := x[i*ld+j0:][:n]
			r1 := x[(i+1)*ld+j0:][:n]
			r2 := x[(i+2)*ld+j0:][:n]
			r3 := x[(i+3)*ld+j0:][:n]
			for j := range r0 {
				o := dst[(j0+j)*rows+i:][:4]
				o[0], o[1], o[2], o[3] = r0[j], r1[j], r2[j], r3[j]
			}
		}
		for ; i < rows; i++ {
			for j, v := range x[i*ld+j0:][:n] {
				dst[(j0+j)*rows+i] = v
			}
		}
	}
	return dst
}
