/* conv2d_bwd.c — backward of op_conv2d_cpu through the same im2col view as the forward.
 *
 * Per image the forward is y (Cout, Ho*Wo) = w (Cout, Kc) · col (Kc, Ho*Wo) + b, Kc = Cin*k*k, where
 * col[r = (ci*k + kh)*k + kw, p] = x[ci, oh*stride - pad0 + kh, ow*stride - pad0 + kw] for output
 * position p = (oh, ow) (zero in the padding). So, one band of output rows at a time:
 *   dw (Cout, Kc) += dy (Cout, n) · col (Kc, n)ᵀ       — needs col, rebuilt from x (im2col)
 *   dcol (Kc, n)   = w (Cout, Kc)ᵀ · dy (Cout, n)       — then col2im: every dcol entry is added back onto
 *                                                         the input pixel its col entry was copied from
 *   db (Cout)     += Σ_p dy[co, p]
 * col2im is the adjoint of im2col (a gather becomes a scatter-add); padded taps are dropped, and input
 * pixels that no window reaches (stride 2 with a remainder) get 0. dx is zeroed first, then accumulated
 * band by band (neighbouring bands overlap on input rows when k > stride).
 * Scratch: one band buffer of at most CONV_BWD_SCRATCH_BYTES, used first for col, then for dcol.
 * A 1x1, stride-1, unpadded conv needs neither: col is x itself.
 * BLAS threads each sgemm (called from serial code); im2col/col2im and db are OpenMP loops.
 */
#include <cblas.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"  // defines: mallocCheck, LS_ASSERT, LS_MIN, LS_MAX
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out

#define CONV_BWD_SCRATCH_BYTES ((size_t)64 << 20) /* max size of one band of col / dcol */

/* Output columns ow in [*lo, *hi) of tap kw read an in-bounds input column iw = ow*stride - pad0 + kw. */
static void tap_cols(int kw, int stride, int pad0, int W, int Wo, int *lo, int *hi) {
    int l = kw >= pad0 ? 0 : (pad0 - kw + stride - 1) / stride;
    int h = (W - 1 + pad0 - kw) < 0 ? 0 : (W - 1 + pad0 - kw) / stride + 1;
    l = LS_MIN(l, Wo);
    *lo = l;
    *hi = LS_MAX(LS_MIN(h, Wo), l);
}

/* col (Kc, nrows*Wo) ← the input pixels seen by output rows [oh0, oh0+nrows) of x (Cin,H,W).
 * Threads split the Kc rows (independent). Same layout as the forward's im2col. */
static void im2col_band(float *col, const float *x, int Cin, int H, int W, int k, int stride, int pad0,
                        int Wo, int oh0, int nrows) {
    int Kc = Cin * k * k;
    size_t n = (size_t)nrows * Wo;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < Kc; r++) {
        int ci = r / (k * k), kh = (r / k) % k, kw = r % k, lo, hi;
        tap_cols(kw, stride, pad0, W, Wo, &lo, &hi);
        const float *xp = x + (size_t)ci * H * W;
        float *cr = col + (size_t)r * n;
        for (int t = 0; t < nrows; t++) {
            float *dst = cr + (size_t)t * Wo;
            int ih = (oh0 + t) * stride - pad0 + kh;
            if (ih < 0 || ih >= H) {
                memset(dst, 0, (size_t)Wo * sizeof(float));
                continue;
            }
            const float *src = xp + (size_t)ih * W + (kw - pad0); /* column ow reads src[ow*stride] */
            for (int ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
            for (int ow = lo; ow < hi; ow++) dst[ow] = src[ow * stride];
            for (int ow = hi; ow < Wo; ow++) dst[ow] = 0.0f;
        }
    }
}

/* dx (Cin,H,W) += col2im(dcol (Kc, nrows*Wo)) for output rows [oh0, oh0+nrows): the adjoint of
 * im2col_band. Threads split the input channels: the k*k rows of one channel all land in that channel's
 * plane, so no two threads touch the same pixel and each pixel's sum has a fixed order. */
static void col2im_band(float *dx, const float *dcol, int Cin, int H, int W, int k, int stride, int pad0,
                        int Wo, int oh0, int nrows) {
    size_t n = (size_t)nrows * Wo;
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < Cin; ci++) {
        float *dxp = dx + (size_t)ci * H * W;
        for (int kh = 0; kh < k; kh++) {
            for (int kw = 0; kw < k; kw++) {
                const float *cr = dcol + (size_t)((ci * k + kh) * k + kw) * n;
                int lo, hi;
                tap_cols(kw, stride, pad0, W, Wo, &lo, &hi);
                for (int t = 0; t < nrows; t++) {
                    int ih = (oh0 + t) * stride - pad0 + kh;
                    if (ih < 0 || ih >= H) continue; /* this tap saw padding: no input gets it */
                    float *dst = dxp + (size_t)ih * W + (kw - pad0);
                    const float *src = cr + (size_t)t * Wo;
                    for (int ow = lo; ow < hi; ow++) dst[ow * stride] += src[ow];
                }
            }
        }
    }
}

void op_conv2d_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                        int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1) {
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    LS_ASSERT(Ho > 0 && Wo > 0 && stride > 0 && k > 0);
    int Kc = Cin * k * k;
    size_t HWo = (size_t)Ho * Wo, HW = (size_t)H * W;

    if (db) { /* threads over output channels; each db[co] sums all images in a fixed order */
#pragma omp parallel for schedule(static)
        for (int co = 0; co < Cout; co++) {
            double acc = 0.0;
            for (int bi = 0; bi < B; bi++) {
                const float *p = dy + ((size_t)bi * Cout + co) * HWo;
                for (size_t i = 0; i < HWo; i++) acc += p[i];
            }
            db[co] += (float)acc;
        }
    }
    if (!dx && !dw) return;

    if (k == 1 && stride == 1 && pad0 == 0 && pad1 == 0) { /* col == x: plain matrix products */
        for (int bi = 0; bi < B; bi++) {
            const float *dyb = dy + (size_t)bi * Cout * HWo, *xb = x + (size_t)bi * Cin * HW;
            if (dw) /* dw (Cout,Cin) += dy_b (Cout,HW) · x_b (Cin,HW)ᵀ */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, (int)HW, 1.0f, dyb, (int)HW,
                            xb, (int)HW, 1.0f, dw, Cin);
            if (dx) /* dx_b (Cin,HW) = w (Cout,Cin)ᵀ · dy_b (Cout,HW) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cin, (int)HW, Cout, 1.0f, w, Cin, dyb,
                            (int)HW, 0.0f, dx + (size_t)bi * Cin * HW, (int)HW);
        }
        return;
    }

    /* output rows per band so that one band of col fits the scratch budget (at least one row) */
    size_t row_bytes = (size_t)Kc * Wo * sizeof(float);
    int band = (int)LS_MAX((size_t)1, LS_MIN((size_t)Ho, CONV_BWD_SCRATCH_BYTES / row_bytes));
    float *col = pool_alloc((size_t)band * row_bytes); /* (Kc, band*Wo): col, then dcol */
    if (dx) memset(dx, 0, (size_t)B * Cin * HW * sizeof(float));

    for (int bi = 0; bi < B; bi++) {
        const float *dyb = dy + (size_t)bi * Cout * HWo, *xb = x + (size_t)bi * Cin * HW;
        for (int oh0 = 0; oh0 < Ho; oh0 += band) {
            int nrows = LS_MIN(band, Ho - oh0), n = nrows * Wo;
            const float *dyband = dyb + (size_t)oh0 * Wo; /* (Cout, n), ld HWo */
            if (dw) { /* dw (Cout,Kc) += dy (Cout,n) · col (Kc,n)ᵀ */
                im2col_band(col, xb, Cin, H, W, k, stride, pad0, Wo, oh0, nrows);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Kc, n, 1.0f, dyband, (int)HWo,
                            col, n, 1.0f, dw, Kc);
            }
            if (dx) { /* dcol (Kc,n) = w (Cout,Kc)ᵀ · dy (Cout,n), scattered back onto dx */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Kc, n, Cout, 1.0f, w, Kc, dyband,
                            (int)HWo, 0.0f, col, n);
                col2im_band(dx + (size_t)bi * Cin * HW, col, Cin, H, W, k, stride, pad0, Wo, oh0, nrows);
            }
        }
    }
    pool_free(col);
}
