/* attention_bwd.c — backward of op_attention_cpu, flash-attention style: the (Tq, Tk) probability matrix is
 * never stored; each chunk of query rows recomputes its scores.
 *
 * Per (batch, head), with S = scale·Q Kᵀ, P = softmax_rows(S) (causal: P[i,j] = 0 for j > i), O = P V:
 *   dV  = Pᵀ dO                      (O is linear in V)
 *   dP  = dO Vᵀ
 *   dS  = P ∘ (dP - D),  D_i = Σ_j P_ij dP_ij    (softmax Jacobian: diag(p) - p pᵀ, applied per row)
 *   dQ  = scale · dS K,   dK = scale · dSᵀ Q
 * (D_i equals dO_i·O_i; computing it from the chunk's own P and dP needs neither O nor a saved statistic,
 * and makes every row of dS sum to zero in the same rounding as the rest.)
 * A chunk holds whole rows of scores (all Tk keys), so the row max and sum come from the recomputed scores
 * directly: the forward saves nothing beyond q, k, v. The price is one max pass over the chunk, small next
 * to the five GEMMs.
 *
 * Work order, as in the forward: threads take whole (batch, head) tasks and run single-threaded sgemms
 * (OpenBLAS's OpenMP build does so inside a parallel region) on their own scratch, walking the head's
 * chunks of query rows in order. dK and dV accumulate over the chunks of one head in that fixed order, so
 * the result does not depend on the thread count (1 vs 2 threads: bit-identical). The first version
 * walked (batch, head, chunk) serially and let BLAS thread each of the five skinny sgemms (one dimension
 * is Dh), with an OpenMP fork/join for the softmax rows between them: 3.4x the forward's time where the
 * arithmetic is 2.5x (BENCHMARKS.md), and results that changed with the thread count. With fewer tasks
 * than threads (one image, few heads, many cores) the region runs on one thread and BLAS threads the
 * sgemms as before (thread-count dependent rounding again).
 * A head's dKᵀ and dVᵀ accumulate in contiguous per-thread (Dh, Tk) blocks, stored transposed into dk, dv
 * once the head is done. Scratch per thread: two (rows, Tk) blocks (≤ 2·ATTN_BWD_CHUNK floats) and those
 * two (Dh, Tk) blocks.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"   // defines: mallocCheck, LS_ASSERT, LS_MIN, LS_MAX
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"     // defines: the ops' semantics (OpTable), op_conv2d_out
#include "vecmath.h" // defines: v8f, v8_exp_nonpos, v8_widen_sum, LS_CLONES

#define ATTN_BWD_CHUNK ((size_t)1 << 20) /* floats in one (rows, Tk) block: 4 MiB */
#define SUM_BLOCK 128 /* softmax row sums: values per lane-wise float partial sum (16 per lane) */

/* One row of a chunk, in place: s (scores, first `live` valid) → P = softmax(s); dp (dO·Vᵀ) → dS =
 * P ∘ (dp - D), D = Σ P·dp. Entries [live, n) (causally masked keys) become 0 in both. Three passes: the
 * max, then e = exp(s - max) with Σe and Σe·dp (D = Σe·dp / Σe), then P and dS together. The sums run
 * in float lanes over blocks of SUM_BLOCK values (16 terms a lane) and in double lanes across blocks: as
 * accurate as the forward's all-double sums, without widening every vector (~8% of the backward). */
LS_CLONES static void softmax_bwd_row(float *s, float *dp, int live, int n) {
    int n8 = live & ~7, rem = live - n8;
    v8f m = v8_load_part(s + n8, rem, -INFINITY);
    for (int j = 0; j < n8; j += 8) m = v8_max(m, v8_load(s + j));
    v8f mx = v8_splat(v8_hmax(m));
    v4d sum = {0.0, 0.0, 0.0, 0.0}, dsum = {0.0, 0.0, 0.0, 0.0};
    for (int j0 = 0; j0 < n8; j0 += SUM_BLOCK) { /* float lanes over a block, then into the double ones */
        v8f bs = v8_splat(0.0f), bd = v8_splat(0.0f);
        for (int j = j0; j < LS_MIN(n8, j0 + SUM_BLOCK); j += 8) {
            v8f e = v8_exp_nonpos(v8_load(s + j) - mx);
            v8_store(s + j, e);
            bs += e;
            bd += e * v8_load(dp + j);
        }
        sum += v8_widen_sum(bs);
        dsum += v8_widen_sum(bd);
    }
    if (rem) { /* padding lanes are -inf: e = 0 adds nothing */
        v8f e = v8_exp_nonpos(v8_load_part(s + n8, rem, -INFINITY) - mx);
        v8_store_part(s + n8, e, rem);
        sum += v8_widen_sum(e);
        dsum += v8_widen_sum(e * v8_load_part(dp + n8, rem, 0.0f));
    }
    double inv_d = 1.0 / ((sum[0] + sum[1]) + (sum[2] + sum[3]));
    double D_d = ((dsum[0] + dsum[1]) + (dsum[2] + dsum[3])) * inv_d;
    v8f inv = v8_splat((float)inv_d), D = v8_splat((float)D_d);
    for (int j = 0; j < n8; j += 8) {
        v8f p = v8_load(s + j) * inv;
        v8_store(s + j, p);
        v8_store(dp + j, p * (v8_load(dp + j) - D));
    }
    if (rem) {
        v8f p = v8_load_part(s + n8, rem, 0.0f) * inv, d = v8_load_part(dp + n8, rem, 0.0f);
        v8_store_part(s + n8, p, rem);
        v8_store_part(dp + n8, p * (d - D), rem);
    }
    memset(s + live, 0, (size_t)(n - live) * sizeof(float));
    memset(dp + live, 0, (size_t)(n - live) * sizeof(float));
}

/* One chunk: query rows [i0, i0+n) of one head against its first nk keys. q, dout point at the chunk's
 * first row, k, v at the head's first key, dq at the chunk's first row (or NULL); row stride C. dkt, dvt
 * (or NULL): the head's dKᵀ, dVᵀ (Dh, ldt) being accumulated. s, dp: (n, nk) scratch. */
static void chunk_backward(float *dq, float *dkt, float *dvt, float *s, float *dp, const float *dout,
                           const float *q, const float *k, const float *v, int n, int nk, int i0, int Dh,
                           int C, int ldt, float scale, int causal) {
    /* s (n, nk) = scale · q kᵀ;  dp (n, nk) = dO vᵀ. Zeroed here and accumulated (beta = 1): OpenBLAS
     * zeroes C for beta = 0 in a slower loop than memset (the pair of sgemms then took ~15% longer). */
    memset(s, 0, (size_t)n * nk * sizeof(float));
    memset(dp, 0, (size_t)n * nk * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nk, Dh, scale, q, C, k, C, 1.0f, s, nk);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nk, Dh, 1.0f, dout, C, v, C, 1.0f, dp, nk);
    /* s → P, dp → dS, row by row (threaded only when the caller's region is not: see the header) */
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && (size_t)n * nk >= ((size_t)1 << 14))
    for (int t = 0; t < n; t++) {
        int live = causal ? i0 + t + 1 : nk; /* causal: key j > query i0+t is masked */
        softmax_bwd_row(s + (size_t)t * nk, dp + (size_t)t * nk, live, nk);
    }
    /* dVᵀ (Dh, nk) += dOᵀ P;  dKᵀ (Dh, nk) += scale · qᵀ dS;  dQ (n, Dh) = scale · dS k.
     * Transposed, the (n, nk) operand is read along its rows and the output is contiguous: at Dh = 40
     * these two sgemms ran 10-25% faster than Pᵀ dO into the strided (nk, Dh) dV. */
    if (dvt)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Dh, nk, n, 1.0f, dout, C, s, nk, 1.0f, dvt, ldt);
    if (dkt)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Dh, nk, n, scale, q, C, dp, nk, 1.0f, dkt, ldt);
    if (dq)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Dh, nk, scale, dp, nk, k, C, 0.0f, dq, C);
}

/* dst (T, Dh), row stride C ← srcᵀ, src (Dh, T) contiguous; blocks of 64 rows keep the writes local */
static void store_transposed(float *dst, const float *src, int T, int Dh, int C) {
    for (int j0 = 0; j0 < T; j0 += 64)
        for (int d = 0; d < Dh; d++)
            for (int j = j0; j < LS_MIN(T, j0 + 64); j++) dst[(size_t)j * C + d] = src[(size_t)d * T + j];
}

void op_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh,
                           int causal) {
    LS_ASSERT(!causal || Tq == Tk);
    int C = NH * Dh; /* row stride of every operand */
    if (!dq && !dk && !dv) return;
    float scale = 1.0f / sqrtf((float)Dh);
    int rows = (int)LS_MAX((size_t)1, LS_MIN((size_t)Tq, ATTN_BWD_CHUNK / (size_t)Tk));
    int ntask = B * NH;
    size_t nt = (size_t)Dh * Tk; /* one head's dKᵀ or dVᵀ */

#pragma omp parallel if (ntask >= omp_get_max_threads())
    {
        float *s = pool_alloc((size_t)rows * Tk * sizeof(float));  /* (rows, nk): scores, then P */
        float *dp = pool_alloc((size_t)rows * Tk * sizeof(float)); /* (rows, nk): dO·Vᵀ, then dS */
        float *dkt = dk ? pool_alloc(nt * sizeof(float)) : NULL;   /* (Dh, Tk) */
        float *dvt = dv ? pool_alloc(nt * sizeof(float)) : NULL;
#pragma omp for schedule(dynamic)
        for (int task = 0; task < ntask; task++) {
            int bi = task / NH, h = task % NH;
            /* head h of batch bi: queries (Tq, Dh) at qoff, keys (Tk, Dh) at koff, row stride C */
            size_t qoff = (size_t)bi * Tq * C + (size_t)h * Dh, koff = (size_t)bi * Tk * C + (size_t)h * Dh;
            if (dkt) memset(dkt, 0, nt * sizeof(float));
            if (dvt) memset(dvt, 0, nt * sizeof(float));
            for (int i0 = 0; i0 < Tq; i0 += rows) {
                int n = LS_MIN(rows, Tq - i0);
                int nk = causal ? i0 + n : Tk; /* causal: keys past the chunk's last row are masked */
                size_t c0 = qoff + (size_t)i0 * C; /* the chunk's first query row */
                chunk_backward(dq ? dq + c0 : NULL, dkt, dvt, s, dp, dout + c0, q + c0, k + koff, v + koff, n,
                               nk, i0, Dh, C, Tk, scale, causal);
            }
            if (dkt) store_transposed(dk + koff, dkt, Tk, Dh, C);
            if (dvt) store_transposed(dv + koff, dvt, Tk, Dh, C);
        }
        pool_free(s);
        pool_free(dp);
        pool_free(dkt);
        pool_free(dvt);
    }
}
