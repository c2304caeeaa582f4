package gpt

// Float32 causal attention on the AVX2/FMA matrix kernels. Per (sequence,
// head), S = Q·Kᵀ, softmax over j ≤ i, then P·V, with every product restricted
// to the lower-triangular blocks (a block of rows i0..i1−1 needs columns j < i1 only),
// so the masked half is never computed. The loop version in kernels.go
// computes the same thing one dot product at a time and stays the reference
// (and the float64 path).

import "math"

func attentionForwardFMA(out, qkv []float32, bsz, t, nHead, d int) {
	hd, ld := d/nHead, 3*d
	scale := float32(1 / math.Sqrt(float64(hd)))
	parallelFor(bsz*nHead, 1, func(lo, hi int) {
		var kts []float32
		p := make([]float32, t*t)
		for task, tb := lo, -1; task < hi; task++ {
			b, h := task/nHead, task%nHead
			if b != tb { // Kᵀ of the whole sequence, all heads (D×T) at once
				kts, tb = transpose(kts, qkv[b*t*ld+d:], t, d, ld), b
			}
			q, v := qkv[b*t*ld+h*hd:], qkv[b*t*ld+2*d+h*hd:]
			causalSoftmax(p, q, kts[h*hd*t:], t, hd, ld, scale)
			o := out[b*t*d+h*hd:]
			for i := 0; i < t; i++ {
				clear(o[i*d : i*d+hd])
			}
			for i0, rows := 0, 0; i0 < t; i0 += rows { // O = P·V over j < i0+rows
				rows = blockRows(t - i0)
				sgemmNN(rows, hd, i0+rows, p[i0*t:], t, v, ld, o[i0*d:], d)
			}
		}
	})
}

// blockRows is the height of the next row block when n rows are left: 6, the
// tallest micro-kernel, while that fits, then 4 (and a last 1–3).
func blockRows(n int) int {
	if n >= 6 {
		return 6
	}
	return min(4, n)
}

// causalSoftmax fills p (T×T) with softmax_j≤i(scale·q_i·k_j), zero for j > i.
func causalSoftmax(p, q, kt []float32, t, hd, ld int, scale float32) {
	lowerTriangle(p, q, ld, kt, t, t, hd)
	for i := 0; i < t; i++ {
		row := p[i*t : (i+1)*t]
		if n8 := (i + 8) &^ 7; n8 <= t {
			// Vectorised: pad the live entries to a multiple of 8 with −∞
			// (e^−∞ flushes to the smallest normal, ~1e-38: nothing next to
			// the max's 1), softmax in place, then zero j > i.
			for j := i + 1; j < n8; j++ {
				row[j] = float32(math.Inf(-1))
			}
			softmaxAVX2(row[:n8], scale)
			clear(row[i+1:])
			continue
		}
		live := row[:i+1]
		mx := live[0]
		for _, v := range live[1:] {
			if v > mx { // not the builtin max: its NaN and ±0 handling is slow
				mx = v
			}
		}
		for j, v := range live {
			live[j] = (v - mx) * scale // scale > 0 keeps mx the maximum
		}
		expSlice(live, live)
		var sum float32
		for _, v := range live {
			sum += v
		}
		inv := 1 / sum
		for j := range live {
			live[j] *= inv
		}
		clear(row[i+1:])
	}
}

// lowerTriangle sets c[i][j] = Σ_p a[i][p]·b[p][j] (c is t×t) for the
// column panels that contain some j ≤ i; entries above the diagonal inside
// those panels hold garbage the callers overwrite, and columns beyond are not
// touched.
func lowerTriangle(c, a []float32, lda int, b []float32, ldb, t, k int) {
	for i0, rows := 0, 0; i0 < t; i0 += rows {
		rows = blockRows(t - i0)
		cols := min(t, (i0+rows+15)/16*16)
		for i := i0; i < i0+rows; i++ {
			clear(c[i*t : i*t+cols])
		}
		sgemmNN(rows, cols, k, a[i0*lda:], lda, b, ldb, c[i0*t:], t)
	}
}

func attentionBackwardFMA(dqkv, qkv, g []float32, bsz, t, nHead, d int) {
	hd, ld := d/nHead, 3*d
	scale := float32(1 / math.Sqrt(float64(hd)))
	parallelFor(bsz*nHead, 1, func(lo, hi int) {
		var kts, vts []float32
		p := make([]float32, t*t)
		ds := make([]float32, t*t)
		for task, tb := lo, -1; task < hi; task++ {
			b, h := task/nHead, task%nHead
			if b != tb { // Kᵀ and Vᵀ of the whole sequence (D×T each) at once
				kts = transpose(kts, qkv[b*t*ld+d:], t, d, ld)
				vts, tb = transpose(vts, qkv[b*t*ld+2*d:], t, d, ld), b
			}
			off := b*t*ld + h*hd
			q, k := qkv[off:], qkv[off+d:]
			dq, dk, dv := dqkv[off:], dqkv[off+d:], dqkv[off+2*d:]
			gh := g[b*t*d+h*hd:]
			for i := 0; i < t; i++ { // this task's part of dqkv, in parallel
				clear(dq[i*ld : i*ld+hd])
				clear(dk[i*ld : i*ld+hd])
				clear(dv[i*ld : i*ld+hd])
			}
			causalSoftmax(p, q, kts[h*hd*t:], t, hd, ld, scale)
			// dP = G·Vᵀ, then dS = P∘(dP − Σ_j P∘dP)·scale.
			lowerTriangle(ds, gh, d, vts[h*hd*t:], t, t, hd)
			for i := 0; i < t; i++ {
				if n8 := (i + 8) &^ 7; n8 <= t {
					// p is zero past i (causalSoftmax clears it), so the
					// padded lanes add nothing and come out 0·finite = 0.
					softmaxBackAVX2(p[i*t:i*t+n8], ds[i*t:i*t+n8], scale)
					clear(ds[i*t+i+1 : (i+1)*t])
					continue
				}
				pr, dr := p[i*t:i*t+i+1], ds[i*t:(i+1)*t]
				var s float32
				for j, pv := range pr {
					s += pv * dr[j]
				}
				for j, pv := range pr {
					dr[j] = pv * (dr[j] - s) * scale
				}
				clear(dr[i+1:])
			}
			for i0, rows := 0, 0; i0 < t; i0 += rows {
				rows = blockRows(t - i0)
				// dQ[i] = Σ_{j≤i} dS[i][j]·K[j]
				sgemmNN(rows, hd, i0+rows, ds[i0*t:], t, k, ld, dq[i0*ld:], ld)
				// dK[j] = Σ_{i≥j} dS[i][j]·Q[i] and dV[j] = Σ_{i≥j} P[i][j]·G[i]
				sgemmTN(rows, hd, t-i0, ds[i0*t+i0:], t, q[i0*ld:], ld, dk[i0*ld:], ld)
				sgemmTN(rows, hd, t-i0, p[i0*t+i0:], t, gh[i0*d:], d, dv[i0*ld:], ld)
			}
		}
	})
}

// expf is e^x in float32 (Cephes' expf: range reduction to |r| ≤ ln2/2 and a
// degree-6 polynomial; about 1 ulp), several times faster than math.Exp.
func expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88: // 2ⁿ would overflow the exponent field; rare, so defer to math
		return float32(math.Exp(float64(x)))
	case x < -87.33654: // below the smallest normal float32: flush to 0
		return 0
	}
	// Round x/ln2 to nearest by truncating ±0.5 (a conversion, not a call).
	z := x * 1.442695040888963
	if z < 0 {
		z -= 0.5
	} else {
		z += 0.5
	}
	n := float32(int32(z))
	r := x - n*0.693359375 - n*-2.12194440e-4
	y := float32(1.9875691500e-4)
	y = y*r + 1.3981999507e-3
	y = y*r + 8.3334519073e-3
	y = y*r + 4.1665795894e-2
	y = y*r + 1.6666665459e-1
	y = y*r + 5.0000001201e-1
	y = y*r*r + r + 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// tanhf is tanh in float32 via expf; absolute error ~1e-7, which is what
// gelu's 1 + tanh(·) can resolve anyway.
func tanhf(x float32) float32 {
	if x > 9 {
		return 1
	}
	if x < -9 {
		return -1
	}
	e := expf(2 * x)
	return (e - 1) / (e + 1)
}

// expSlice sets dst[i] = e^src[i] (dst may be src), eight lanes at a time
// where AVX2 is available.
func expSlice(dst, src []float32) {
	dst = dst[:len(src)]
	i := 0
	if haveFMA {
		i = len(src) / 8 * 8
		if i > 0 {
			expAVX2(dst[:i], src[:i])
		}
	}
	for ; i < len(src); i++ {
		dst[i] = expf(src[i])
	}
}

// geluFMA is gelu_new in float32 with the vectorised exp: forward into y when
// dx is nil, else the backward dx = g·gelu'(x), via tanh(u) = (e−1)/(e+1)
// with e = e^{2u} (finite: the exp clamps its input).
func geluFMA(y, dx, x, g []float32) {
	parallelFor(len(x), 4096, func(lo, hi int) {
		// The whole eights in assembly, the tail below.
		if n8 := (hi - lo) &^ 7; n8 > 0 {
			if dx == nil {
				geluFwdAVX2(y[lo:lo+n8], x[lo:lo+n8])
			} else {
				geluBwdAVX2(dx[lo:lo+n8], x[lo:lo+n8], g[lo:lo+n8])
			}
			lo += n8
		}
		var buf [256]float32
		for c := lo; c < hi; c += len(buf) {
			xs := x[c:min(c+len(buf), hi)]
			e := buf[:len(xs)]
			for i, v := range xs {
				e[i] = 2 * geluC * (v + 0.044715*v*v*v)
			}
			expSlice(e, e)
			for i, v := range xs {
				// With s = e/(e+1): 0.5(1+t) = s and 1−t² = 4s/(e+1), written
				// so that nothing cancels when e is tiny.
				s := e[i] / (e[i] + 1)
				if dx == nil {
					y[c+i] = v * s
				} else {
					dx[c+i] = g[c+i] * (s + 2*v*s/(e[i]+1)*geluC*(1+3*0.044715*v*v))
				}
			}
		}
	})
}
