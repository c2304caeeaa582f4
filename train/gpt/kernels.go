package gpt

// Plain-Go kernels behind the custom gorgonia ops in ops.go. They are generic
// over float32 (training) and float64 (gradient checks) and work on row-major
// slices; parallelism is over independent rows or (sequence, head) pairs so
// goroutines never write the same memory.

import (
	"math"
	"runtime"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

type float interface{ ~float32 | ~float64 }

var blasImpl gonum.Implementation

// gemm computes C = alpha·op(A)·op(B) + beta·C with op(X) = Xᵀ when tX, for
// row-major A (m×k after op), B (k×n after op) and C (m×n).
func gemm[T float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	switch a := any(a).(type) {
	case []float32:
		if haveFMA && alpha == 1 && (beta == 0 || beta == 1) {
			sgemmFast(tA, tB, m, n, k, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
			return
		}
		blasImpl.Sgemm(ta, tb, m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blasImpl.Dgemm(ta, tb, m, n, k, float64(alpha), a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// parallelFor runs fn(i) for i in [0,n) on up to GOMAXPROCS goroutines, in
// contiguous chunks. Small n runs inline: a goroutine costs more than a row.
func parallelFor(n, minPerWorker int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if minPerWorker < 1 {
		minPerWorker = 1
	}
	if w := n / minPerWorker; w < workers {
		workers = w
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// exp and tanh use the fast float32 versions for float32 (Sizeof is a
// constant per instantiation, so the branch compiles away).
func exp[T float](x T) T {
	if unsafe.Sizeof(x) == 4 {
		return T(expf(float32(x)))
	}
	return T(math.Exp(float64(x)))
}

func tanh[T float](x T) T {
	if unsafe.Sizeof(x) == 4 {
		return T(tanhf(float32(x)))
	}
	return T(math.Tanh(float64(x)))
}

func dot[T float](a, b []T) T {
	b = b[:len(a)]
	var s0, s1, s2, s3 T
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy: y += alpha·x.
func axpy[T float](alpha T, x, y []T) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// addInto: out = x + y.
func addInto[T float](out, x, y []T) {
	parallelFor(len(out), 1<<14, func(lo, hi int) {
		o, a, b := out[lo:hi], x[lo:hi], y[lo:hi]
		for i := range o {
			o[i] = a[i] + b[i]
		}
	})
}

// ---- embedding: x[n] = wte[ids[n]] + wpe[pos[n]] ----

func embedForward[T float](out, wte, wpe []T, ids, pos []int, d int) {
	for n, id := range ids {
		o := out[n*d : (n+1)*d]
		te := wte[id*d : (id+1)*d]
		pe := wpe[pos[n]*d : (pos[n]+1)*d]
		for j := range o {
			o[j] = te[j] + pe[j]
		}
	}
}

// embedBackward scatter-adds rows of grad into dst (zeroed first) at rows idx[n].
func embedBackward[T float](dst, grad []T, idx []int, d int) {
	clear(dst)
	for n, r := range idx {
		axpy(1, grad[n*d:(n+1)*d], dst[r*d:(r+1)*d])
	}
}

// ---- layer norm over the last axis (biased variance, as PyTorch) ----

func lnStats[T float](x []T, eps float64) (mean, rstd T) {
	if unsafe.Sizeof(x[0]) == 4 {
		// float32 data: one pass, in float64 and shifted by x[0], so that
		// Σ(x−x₀)² − (Σ(x−x₀))²/d cancels nothing float32 could resolve.
		k := float64(x[0])
		var s1, s2 float64
		for _, v := range x {
			dv := float64(v) - k
			s1 += dv
			s2 += dv * dv
		}
		n := float64(len(x))
		mu := s1 / n
		vr := max(s2/n-mu*mu, 0)
		return T(k + mu), T(1 / math.Sqrt(vr+eps))
	}
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mu := s / float64(len(x))
	var ss float64
	for _, v := range x {
		dv := float64(v) - mu
		ss += dv * dv
	}
	return T(mu), T(1 / math.Sqrt(ss/float64(len(x))+eps))
}

// layerNormForward also records each row's mean and 1/std in st (2 per row,
// unless st is nil) for the backward kernels, which run later on the same
// tape and so see the same x.
func layerNormForward[T float](out, x, w, b []T, d int, eps float64, st []float64) {
	n := len(x) / d
	parallelFor(n, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*d : (r+1)*d]
			or, w, b := out[r*d : (r+1)*d][:len(xr)], w[:len(xr)], b[:len(xr)]
			mean, rstd := lnStats(xr, eps)
			if st != nil {
				st[2*r], st[2*r+1] = float64(mean), float64(rstd)
			}
			for j, v := range xr {
				or[j] = (v-mean)*rstd*w[j] + b[j]
			}
		}
	})
}

// layerNormBackwardX: dx = rstd·(g·w − mean(g·w) − x̂·mean(g·w·x̂)), with the
// row statistics st recorded by layerNormForward.
func layerNormBackwardX[T float](dx, x, w, g []T, d int, st []float64) {
	n := len(x) / d
	parallelFor(n, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*d : (r+1)*d]
			// Equal lengths let the compiler drop the bounds checks.
			gr, dr, w := g[r*d : (r+1)*d][:len(xr)], dx[r*d : (r+1)*d][:len(xr)], w[:len(xr)]
			mean, rstd := T(st[2*r]), T(st[2*r+1])
			var sg, sgx T
			for j, v := range xr {
				gw := gr[j] * w[j]
				dr[j] = gw // g·w, kept for the second pass
				sg += gw
				sgx += gw * (v - mean) * rstd
			}
			sg /= T(d)
			sgx /= T(d)
			for j, v := range xr {
				xh := (v - mean) * rstd
				dr[j] = rstd * (dr[j] - sg - xh*sgx)
			}
		}
	})
}

// colBlocks is how many row blocks the column reductions (dw, db) split into:
// fixed, so that the summation order, and so the result, does not depend on
// the number of cores.
func colBlocks(rows int) int { return max(1, min(8, rows/256)) }

// layerNormBackwardW: dw = Σ_rows g·x̂ and db = Σ_rows g (either may be nil),
// with the row statistics st recorded by layerNormForward.
func layerNormBackwardW[T float](dw, db, x, g []T, d int, st []float64) {
	n := len(x) / d
	nb := colBlocks(n)
	part := make([]T, 2*nb*d) // per block: dw then db partial sums
	parallelFor(nb, 1, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			pw, pb := part[2*blk*d:(2*blk+1)*d], part[(2*blk+1)*d:(2*blk+2)*d]
			for r := blk * n / nb; r < (blk+1)*n/nb; r++ {
				xr, gr := x[r*d:(r+1)*d], g[r*d:(r+1)*d]
				if db != nil {
					axpy(1, gr, pb)
				}
				if dw != nil {
					mean, rstd := T(st[2*r]), T(st[2*r+1])
					for j, v := range xr {
						pw[j] += gr[j] * (v - mean) * rstd
					}
				}
			}
		}
	})
	if dw != nil {
		clear(dw)
	}
	if db != nil {
		clear(db)
	}
	for blk := 0; blk < nb; blk++ {
		if dw != nil {
			axpy(1, part[2*blk*d:(2*blk+1)*d], dw)
		}
		if db != nil {
			axpy(1, part[(2*blk+1)*d:(2*blk+2)*d], db)
		}
	}
}

// ---- linear (Conv1D): y = x·W + b ----

func linearForward[T float](y, x, w, b []T, n, k, m int) {
	for r := 0; r < n; r++ {
		copy(y[r*m:(r+1)*m], b)
	}
	gemm(false, false, n, m, k, 1, x, k, w, m, 1, y, m)
}

// colSum: out[j] = Σ_r g[r][j].
func colSum[T float](out, g []T, m int) {
	n := len(g) / m
	nb := colBlocks(n)
	if nb == 1 {
		clear(out)
		for r := 0; r < n; r++ {
			axpy(1, g[r*m:(r+1)*m], out)
		}
		return
	}
	part := make([]T, nb*m)
	parallelFor(nb, 1, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			p := part[blk*m : (blk+1)*m]
			r0, r1 := blk*n/nb, (blk+1)*n/nb
			j0 := 0
			if p32, ok := any(p).([]float32); ok && haveFMA && m >= 8 {
				// Same per-column order as the loop below, eight columns a time.
				j0 = m &^ 7
				colSumAVX2(p32[:j0], any(g[r0*m:]).([]float32), m, r1-r0)
			}
			if j0 < m {
				for r := r0; r < r1; r++ {
					axpy(1, g[r*m+j0:(r+1)*m], p[j0:])
				}
			}
		}
	})
	copy(out, part[:m])
	for blk := 1; blk < nb; blk++ {
		axpy(1, part[blk*m:(blk+1)*m], out)
	}
}

// ---- gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) ----

const geluC = 0.7978845608028654 // √(2/π)

func geluForward[T float](y, x []T) {
	if y32, ok := any(y).([]float32); ok && haveFMA {
		geluFMA(y32, nil, any(x).([]float32), nil)
		return
	}
	geluForwardLoops(y, x)
}

func geluForwardLoops[T float](y, x []T) {
	parallelFor(len(x), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			y[i] = 0.5 * v * (1 + tanh(geluC*(v+0.044715*v*v*v)))
		}
	})
}

func geluBackward[T float](dx, x, g []T) {
	if d32, ok := any(dx).([]float32); ok && haveFMA {
		geluFMA(nil, d32, any(x).([]float32), any(g).([]float32))
		return
	}
	geluBackwardLoops(dx, x, g)
}

func geluBackwardLoops[T float](dx, x, g []T) {
	parallelFor(len(x), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			t := tanh(geluC * (v + 0.044715*v*v*v))
			dx[i] = g[i] * (0.5*(1+t) + 0.5*v*(1-t*t)*geluC*(1+3*0.044715*v*v))
		}
	})
}

// ---- causal multi-head self-attention on fused qkv ----
//
// qkv is [B·T, 3D], each row q|k|v with head h in columns h·hd:(h+1)·hd of
// each third; out is [B·T, D]. Rows of one sequence are contiguous, and
// padding sits at the end of a sequence, so causality alone keeps padding
// from reaching real tokens.

func attentionForward[T float](out, qkv []T, bsz, t, nHead, d int) {
	if o, ok := any(out).([]float32); ok && haveFMA {
		attentionForwardFMA(o, any(qkv).([]float32), bsz, t, nHead, d)
		return
	}
	attentionForwardLoops(out, qkv, bsz, t, nHead, d)
}

func attentionForwardLoops[T float](out, qkv []T, bsz, t, nHead, d int) {
	hd := d / nHead
	scale := T(1 / math.Sqrt(float64(hd)))
	parallelFor(bsz*nHead, 1, func(lo, hi int) {
		p := make([]T, t)
		for task := lo; task < hi; task++ {
			b, h := task/nHead, task%nHead
			base := b * t
			for i := 0; i < t; i++ {
				q := qkv[(base+i)*3*d+h*hd:][:hd]
				mx := T(math.Inf(-1))
				for j := 0; j <= i; j++ {
					k := qkv[(base+j)*3*d+d+h*hd:][:hd]
					p[j] = scale * dot(q, k)
					mx = max(mx, p[j])
				}
				var sum T
				for j := 0; j <= i; j++ {
					p[j] = exp(p[j] - mx)
					sum += p[j]
				}
				o := out[(base+i)*d+h*hd:][:hd]
				clear(o)
				inv := 1 / sum
				for j := 0; j <= i; j++ {
					axpy(p[j]*inv, qkv[(base+j)*3*d+2*d+h*hd:][:hd], o)
				}
			}
		}
	})
}

// attentionBackward recomputes the attention weights from qkv (cheap at these
// sizes, and it keeps the op stateless) and writes dqkv (fully overwritten).
func attentionBackward[T float](dqkv, qkv, g []T, bsz, t, nHead, d int) {
	if o, ok := any(dqkv).([]float32); ok && haveFMA {
		attentionBackwardFMA(o, any(qkv).([]float32), any(g).([]float32), bsz, t, nHead, d)
		return
	}
	attentionBackwardLoops(dqkv, qkv, g, bsz, t, nHead, d)
}

func attentionBackwardLoops[T float](dqkv, qkv, g []T, bsz, t, nHead, d int) {
	hd := d / nHead
	scale := T(1 / math.Sqrt(float64(hd)))
	clear(dqkv)
	parallelFor(bsz*nHead, 1, func(lo, hi int) {
		p := make([]T, t)
		dp := make([]T, t)
		for task := lo; task < hi; task++ {
			b, h := task/nHead, task%nHead
			base := b * t
			for i := 0; i < t; i++ {
				q := qkv[(base+i)*3*d+h*hd:][:hd]
				mx := T(math.Inf(-1))
				for j := 0; j <= i; j++ {
					p[j] = scale * dot(q, qkv[(base+j)*3*d+d+h*hd:][:hd])
					mx = max(mx, p[j])
				}
				var sum T
				for j := 0; j <= i; j++ {
					p[j] = exp(p[j] - mx)
					sum += p[j]
				}
				gi := g[(base+i)*d+h*hd:][:hd]
				var pdp T
				for j := 0; j <= i; j++ {
					p[j] /= sum
					dp[j] = dot(gi, qkv[(base+j)*3*d+2*d+h*hd:][:hd])
					pdp += p[j] * dp[j]
					axpy(p[j], gi, dqkv[(base+j)*3*d+2*d+h*hd:][:hd]) // dv_j += p_ij·g_i
				}
				dq := dqkv[(base+i)*3*d+h*hd:][:hd]
				for j := 0; j <= i; j++ {
					ds := p[j] * (dp[j] - pdp) * scale
					axpy(ds, qkv[(base+j)*3*d+d+h*hd:][:hd], dq) // dq_i += ds_ij·k_j
					axpy(ds, q, dqkv[(base+j)*3*d+d+h*hd:][:hd]) // dk_j += ds_ij·q_i
				}
			}
		}
	})
}

// ---- tied head + log-softmax + gather of the target token ----
//
// Only rows with a target (tgt[n] >= 0) are computed; others give 0. The
// logits of scored rows are computed in blocks with a gemm against wteᵀ.

const headBlock = 64

// headCache carries the scored rows' logits (packed, [rows, V]) and their
// log-sum-exps from the forward kernel to the backward one, which the tape
// always runs after it on the same inputs; each holds a []T.
type headCache struct{ lg, lse any }

// cacheBuf returns *p as a []T of length n, reallocated if needed.
func cacheBuf[T float](p *any, n int) []T {
	if s, ok := (*p).([]T); ok && cap(s) >= n {
		return s[:n]
	}
	s := make([]T, n)
	*p = s
	return s
}

func headForward[T float](logp, h, wte []T, tgt []int, v, d int, argmax []int, c *headCache) {
	rows := scoredRows(tgt)
	clear(logp)
	logits := logitsFunc(wte, v, d)
	lgAll, lseAll := cacheBuf[T](&c.lg, len(rows)*v), cacheBuf[T](&c.lse, len(rows))
	nb := (len(rows) + headBlock - 1) / headBlock
	parallelFor(nb, 1, func(lo, hi int) {
		hs := make([]T, headBlock*d)
		for blk := lo; blk < hi; blk++ {
			rs := rows[blk*headBlock : min((blk+1)*headBlock, len(rows))]
			for i, r := range rs {
				copy(hs[i*d:(i+1)*d], h[r*d:(r+1)*d])
			}
			lg := lgAll[blk*headBlock*v:]
			logits(hs, len(rs), lg)
			for i, r := range rs {
				l := lg[i*v : (i+1)*v]
				lse, am := logSumExp(l)
				lseAll[blk*headBlock+i] = lse
				logp[r] = l[tgt[r]] - lse
				if argmax != nil {
					argmax[r] = am
				}
			}
		}
	})
}

// headBackward writes dlogits for the scored rows only, packed: row r of
// dlogits is g[n]·(onehot(tgt[n]) − softmax(logits[n])) for the r-th scored
// row n (prompt and padding rows take no work downstream); rows past the
// scored count are zero. The logits and log-sum-exps come from c, filled by
// headForward.
func headBackward[T float](dlogits, g []T, tgt []int, v int, c *headCache) {
	rows := scoredRows(tgt)
	lgAll, lseAll := c.lg.([]T), c.lse.([]T)
	clear(dlogits[len(rows)*v:])
	parallelFor(len(rows), 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := rows[i]
			l := lgAll[i*v : (i+1)*v]
			lse := lseAll[i]
			out := dlogits[i*v : (i+1)*v]
			gr := g[r]
			if o32, ok := any(out).([]float32); ok {
				expShift32(o32, any(l).([]float32), float32(lse))
				for j := range out {
					out[j] *= -gr
				}
			} else {
				for j, x := range l {
					out[j] = -gr * exp(x-lse)
				}
			}
			out[tgt[r]] += gr
		}
	})
}

// logitsFunc returns a function computing lg = hs·wteᵀ for a block of rows.
// The float32 path transposes wte once per call rather than once per block.
func logitsFunc[T float](wte []T, v, d int) func(hs []T, rows int, lg []T) {
	if w32, ok := any(wte).([]float32); ok && haveFMA {
		wt := transpose(nil, w32, v, d, d) // [D, V]
		return func(hs []T, rows int, lg []T) {
			l := any(lg).([]float32)[:rows*v]
			clear(l)
			sgemmNN(rows, v, d, any(hs).([]float32), d, wt, v, l, v)
		}
	}
	return func(hs []T, rows int, lg []T) {
		gemm(false, true, rows, v, d, 1, hs, d, wte, d, 0, lg, v)
	}
}

// headBackwardH: dh[n] = dlogits[r]·wte for the r-th scored row n, 0 elsewhere.
func headBackwardH[T float](dh, dlogits, wte []T, tgt []int, v, d int) {
	rows := scoredRows(tgt)
	clear(dh)
	packed := make([]T, len(rows)*d)
	gemm(false, false, len(rows), d, v, 1, dlogits, v, wte, d, 0, packed, d)
	for r, n := range rows {
		copy(dh[n*d:(n+1)*d], packed[r*d:(r+1)*d])
	}
}

// headBackwardW: dwte = Σ_r dlogits[r]ᵀ·h[n_r] over the scored rows.
func headBackwardW[T float](dwte, dlogits, h []T, tgt []int, v, d int) {
	rows := scoredRows(tgt)
	hs := make([]T, len(rows)*d)
	for r, n := range rows {
		copy(hs[r*d:(r+1)*d], h[n*d:(n+1)*d])
	}
	gemm(true, false, v, d, len(rows), 1, dlogits, v, hs, d, 0, dwte, d)
}

func scoredRows(tgt []int) []int {
	rows := make([]int, 0, len(tgt))
	for n, t := range tgt {
		if t >= 0 {
			rows = append(rows, n)
		}
	}
	return rows
}

// logSumExp is log Σ exp(l) computed stably (shifted by the max), and the argmax.
func logSumExp[T float](l []T) (T, int) {
	am := 0
	for j, x := range l {
		if x > l[am] {
			am = j
		}
	}
	mx := l[am]
	var s T
	if l32, ok := any(l).([]float32); ok {
		var buf [512]float32
		for lo := 0; lo < len(l32); lo += len(buf) {
			chunk := l32[lo:min(lo+len(buf), len(l32))]
			e := buf[:len(chunk)]
			expShift32(e, chunk, float32(mx))
			for _, v := range e {
				s += T(v)
			}
		}
	} else {
		for _, x := range l {
			s += exp(x - mx)
		}
	}
	return mx + T(math.Log(float64(s))), am
}

// expShift32: dst[i] = e^(src[i]−shift), vectorised.
func expShift32(dst, src []float32, shift float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = v - shift
	}
	expSlice(dst, dst)
}
