/* conv2d.c — fast CPU Conv2d: im2col + OpenBLAS sgemm, chunked over output rows.
 *
 * For one image, y (Cout, Ho*Wo) = w (Cout, Kc) · col (Kc, Ho*Wo) with Kc = Cin*k*k, where row
 * r = (ci*k + kh)*k + kw of col holds the input pixel that kernel tap (ci,kh,kw) sees at each output
 * position (zero where it falls in the padding). The full col matrix can be huge (VAE decoder at 512x512:
 * 256*9 x 262144 floats = 2.4 GB), so it is built for a band of output rows at a time, bounded by
 * CONV_SCRATCH_BYTES, and each band's GEMM writes straight into y (ldc = Ho*Wo).
 * A 1x1, stride-1, unpadded conv needs no im2col: col is x itself.
 */
#include <cblas.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"  // defines: mallocCheck, LS_MIN, LS_MAX
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out

#define CONV_SCRATCH_BYTES ((size_t)64 << 20) /* max size of one band of col */

/* Fill col (Kc, nrows*Wo) for output rows [oh0, oh0+nrows) of one image x (Cin,H,W).
 * Threads split the Kc rows; each row is independent. */
static void im2col_band(float *col, const float *x, int Cin, int H, int W, int k, int stride, int pad0,
                        int Wo, int oh0, int nrows) {
    int Kc = Cin * k * k;
    size_t n = (size_t)nrows * Wo; /* columns in this band */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < Kc; r++) {
        int ci = r / (k * k), kh = (r / k) % k, kw = r % k;
        const float *xp = x + (size_t)ci * H * W;
        float *cr = col + (size_t)r * n;
        /* output columns ow in [lo, hi) read an in-bounds input column iw = ow*stride - pad0 + kw */
        int lo = kw >= pad0 ? 0 : (pad0 - kw + stride - 1) / stride;
        int hi = (W - 1 + pad0 - kw) < 0 ? 0 : (W - 1 + pad0 - kw) / stride + 1;
        lo = LS_MIN(lo, Wo);
        hi = LS_MAX(LS_MIN(hi, Wo), lo);
        for (int t = 0; t < nrows; t++) {
            float *dst = cr + (size_t)t * Wo;
            int ih = (oh0 + t) * stride - pad0 + kh;
            if (ih < 0 || ih >= H) { /* the whole output row sees padding */
                memset(dst, 0, (size_t)Wo * sizeof(float));
                continue;
            }
            const float *xrow = xp + (size_t)ih * W;
            int off = kw - pad0; /* output column ow reads input column ow*stride + off */
            for (int ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
            if (stride == 1) {
                if (hi > lo) memcpy(dst + lo, xrow + lo + off, (size_t)(hi - lo) * sizeof(float));
            } else {
                for (int ow = lo; ow < hi; ow++) dst[ow] = xrow[ow * stride + off];
            }
            for (int ow = hi; ow < Wo; ow++) dst[ow] = 0.0f;
        }
    }
}

/* x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or NULL → y (B,Cout,Ho,Wo). */
void op_conv2d_cpu(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W,
               int Cout, int k, int stride, int pad0, int pad1) {
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    LS_ASSERT(Ho > 0 && Wo > 0 && stride > 0 && k > 0);
    int Kc = Cin * k * k;
    size_t HWo = (size_t)Ho * Wo;
    int direct = (k == 1 && stride == 1 && pad0 == 0 && pad1 == 0); /* col == x */

    /* output rows per band so that the band's col fits the scratch budget (at least one row) */
    size_t row_bytes = (size_t)Kc * Wo * sizeof(float);
    int band = direct ? Ho : (int)LS_MAX((size_t)1, LS_MIN((size_t)Ho, CONV_SCRATCH_BYTES / row_bytes));
    float *col = direct ? NULL : pool_alloc((size_t)band * row_bytes); /* (Kc, band*Wo) */

    for (int bi = 0; bi < B; bi++) {
        const float *xb = x + (size_t)bi * Cin * H * W;
        float *yb = y + (size_t)bi * Cout * HWo;
        /* bias first, then each GEMM accumulates onto it (beta = 1) */
        float beta = 0.0f;
        if (b) {
#pragma omp parallel for schedule(static)
            for (int co = 0; co < Cout; co++) {
                for (size_t i = 0; i < HWo; i++) yb[co * HWo + i] = b[co];
            }
            beta = 1.0f;
        }
        if (direct) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, (int)HWo, Cin, 1.0f, w, Cin, xb,
                        (int)HWo, beta, yb, (int)HWo);
            continue;
        }
        for (int oh0 = 0; oh0 < Ho; oh0 += band) {
            int nrows = LS_MIN(band, Ho - oh0);
            int n = nrows * Wo;
            im2col_band(col, xb, Cin, H, W, k, stride, pad0, Wo, oh0, nrows);
            /* y[:, oh0*Wo : oh0*Wo + n] (+)= w (Cout,Kc) · col (Kc,n) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, n, Kc, 1.0f, w, Kc, col, n, beta,
                        yb + (size_t)oh0 * Wo, (int)HWo);
        }
    }
    pool_free(col);
}
