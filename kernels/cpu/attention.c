/* attention.c — fast CPU multi-head attention: per (batch, head, block of query rows),
 *   S = scale · Q Kᵀ (sgemm) → P = exp(S - rowmax) (vectorised) → O = P V (sgemm) → O /= rowsum(P).
 *
 * Threads split the (batch, head, row block) tasks; each thread runs single-threaded sgemms (OpenBLAS's
 * OpenMP build does so inside a parallel region) on its own score block (rows x Tk). SD1.5 self-attention
 * at 512x512 has T = 4096: a full head's scores would be 64 MiB. The first version threaded each sgemm
 * and the softmax separately over shared 4 MiB chunks, with libm's scalar expf: the softmax alone then
 * cost more than both GEMMs (0.69 s a call; now 0.24 s, BENCHMARKS.md).
 * Heads are read in place from the (B, T, NH*Dh) layout through the GEMM leading dimension: no transpose.
 * Normalising O's Dh columns after the second GEMM instead of P's Tk columns before it saves a pass over
 * the scores (same maths; a different rounding order, equally accurate).
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"  // defines: mallocCheck, LS_ASSERT, LS_MIN, LS_MAX
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out
#include "vecmath.h" // defines: v8f, v8_exp_nonpos, LS_CLONES

/* Query rows per task: more rows amortise OpenBLAS's packing of K (once per sgemm call), fewer keep the
 * scores nearer the core. Measured at T = 4096, Dh = 40 on 2 Zen 3 cores: 16 rows (256 KiB, in L2)
 * 0.36 s, 64 rows 0.28 s, 128 rows 0.24 s, 256 rows 0.25 s. */
#define ATTN_MAX_ROWS 128
#define ATTN_BLOCK_BYTES ((size_t)2 << 20) /* cap on one thread's scores for very long key sequences */

/* row (n) ← exp(row - max(row)) in place; returns the sum of the new values. The sum is accumulated in
 * double lanes (a float sum over Tk = 4096 terms costs ~1e-5 relative, 10x PyTorch's error). */
LS_CLONES static double exp_row(float *row, int n) {
    int n8 = n & ~7, rem = n - n8;
    v8f m = v8_load_part(row + n8, rem, -INFINITY);
    for (int j = 0; j < n8; j += 8) m = v8_max(m, v8_load(row + j));
    v8f mx = v8_splat(v8_hmax(m));
    v4d sum = {0.0, 0.0, 0.0, 0.0};
    for (int j = 0; j < n8; j += 8) {
        v8f e = v8_exp_nonpos(v8_load(row + j) - mx);
        v8_store(row + j, e);
        sum += v8_widen_sum(e);
    }
    if (rem) { /* padding lanes are -inf: exp gives 0 and adds nothing */
        v8f e = v8_exp_nonpos(v8_load_part(row + n8, rem, -INFINITY) - mx);
        v8_store_part(row + n8, e, rem);
        sum += v8_widen_sum(e);
    }
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

/* q (B,Tq,NH*Dh), k and v (B,Tk,NH*Dh) → out (B,Tq,NH*Dh). */
void op_attention_cpu(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                  int NH, int Dh, int causal) {
    LS_ASSERT(!causal || Tq == Tk);
    int C = NH * Dh; /* row stride of every operand */
    float scale = 1.0f / sqrtf((float)Dh);
    int rows = (int)LS_MAX((size_t)1, LS_MIN((size_t)LS_MIN(Tq, ATTN_MAX_ROWS),
                                             ATTN_BLOCK_BYTES / sizeof(float) / (size_t)Tk));
    int nblk = (Tq + rows - 1) / rows;
    int ntask = B * NH * nblk;

#pragma omp parallel
    {
        float *s = pool_alloc((size_t)rows * Tk * sizeof(float)); /* (rows, Tk) scores of one task */
        double *inv = pool_alloc((size_t)rows * sizeof(double));  /* 1 / row sums */
#pragma omp for schedule(dynamic)
        for (int task = 0; task < ntask; task++) {
            int bi = task / (NH * nblk), h = task / nblk % NH, i0 = task % nblk * rows;
            const float *qh = q + (size_t)bi * Tq * C + (size_t)h * Dh; /* (Tq, Dh), ld C */
            const float *kh = k + (size_t)bi * Tk * C + (size_t)h * Dh; /* (Tk, Dh), ld C */
            const float *vh = v + (size_t)bi * Tk * C + (size_t)h * Dh; /* (Tk, Dh), ld C */
            float *oh = out + (size_t)bi * Tq * C + (size_t)h * Dh + (size_t)i0 * C; /* (n, Dh), ld C */
            int n = LS_MIN(rows, Tq - i0);
            int nk = causal ? i0 + n : Tk; /* causal: later keys are masked for every row here */
            /* s (n, nk) = scale · q[i0:i0+n] · k[0:nk]ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nk, Dh, scale, qh + (size_t)i0 * C, C,
                        kh, C, 0.0f, s, nk);
            for (int t = 0; t < n; t++) {
                float *row = s + (size_t)t * nk;
                int live = causal ? i0 + t + 1 : nk; /* causal: key j > query i is masked (−inf → 0) */
                inv[t] = 1.0 / exp_row(row, live);
                memset(row + live, 0, (size_t)(nk - live) * sizeof(float));
            }
            /* out[i0:i0+n] (n, Dh) = exp-scores (n, nk) · v[0:nk] (nk, Dh), then each row / its sum */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Dh, nk, 1.0f, s, nk, vh, C, 0.0f, oh,
                        C);
            for (int t = 0; t < n; t++) {
                float *o = oh + (size_t)t * C;
                for (int d = 0; d < Dh; d++) o[d] = (float)(o[d] * inv[t]);
            }
        }
        pool_free(s);
        pool_free(inv);
    }
}
