/* attention.c — fast CPU multi-head attention: per (batch, head, block of query rows),
 *   S = scale · Q Kᵀ (sgemm) → P = exp(S - rowmax) (vectorised) → O = P V (sgemm) → O /= rowsum(P).
 *
 * Threads split the (batch, head, row block) tasks; each thread runs single-threaded sgemms (OpenBLAS's
 * OpenMP build does so inside a parallel region) on its own small score block, sized to stay in its L2
 * (ATTN_BLOCK_BYTES). SD1.5 self-attention at 512x512 has T = 4096: a full head's scores would be 64 MiB,
 * and even the 4 MiB row chunks of the first version went through memory four times (GEMM write,
 * softmax read+write, GEMM read) — with BLAS and the softmax threaded separately, that and the scalar
 * libm expf made the softmax cost more than both GEMMs.
 * Heads are read in place from the (B, T, NH*Dh) layout through the GEMM leading dimension: no transpose.
 * Normalising O's Dh columns after the second GEMM instead of P's Tk columns before it saves a pass over
 * the scores (same maths; a different rounding order, equally accurate).
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h" // defines: mallocCheck, LS_ASSERT, LS_MIN, LS_MAX
#include "ops.h"    // defines: op_attention

#define ATTN_BLOCK_BYTES ((size_t)256 << 10) /* one thread's score block: half of a 512 KiB L2 */
#define ATTN_MAX_ROWS 256                    /* query rows per task, for short key sequences */

/* expf for x <= 0 (softmax arguments after max subtraction), written so that GCC vectorises it inside
 * `#pragma omp simd`: x = n·ln2 + r with |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial
 * (truncation < 1e-8 relative, so ~1 ulp overall), times 2^n built in the exponent bits.
 * Below -87.3 the true value is < 2^-126 (a denormal): returns 0, which cannot change a softmax whose
 * largest term is exp(0) = 1. */
#pragma omp declare simd notinbranch
static inline float exp_nonpos(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;     /* ln2 split so that n·ln2_hi is exact for |n| < 2^9 */
    const float ln2_lo = 1.42860682030941723e-6f;
    const float shifter = 12582912.0f;           /* 1.5·2^23: adding it rounds to an integer */
    float xc = x < -87.3f ? -87.3f : x;
    float t = xc * log2e + shifter;              /* low bits of t hold n = round(x·log2e) */
    float n = t - shifter;
    float r = (xc - n * ln2_hi) - n * ln2_lo;    /* |r| <= ln2/2 */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);
    int32_t e = (ti - 0x4B400000 + 127) << 23; /* (n + 127) << 23 = 2^n; n >= -126 after the clamp */
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return x < -87.3f ? 0.0f : p * scale;
}

/* row (n) ← exp(row - max(row)) in place; returns the sum of the new values. The sum is accumulated in
 * double lanes (a float sum over Tk = 4096 terms costs ~1e-5 relative, 10x PyTorch's error). */
static double exp_row(float *row, int n) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        float e = exp_nonpos(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    return sum;
}

/* q (B,Tq,NH*Dh), k and v (B,Tk,NH*Dh) → out (B,Tq,NH*Dh). */
void op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
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
        float *s = mallocCheck((size_t)rows * Tk * sizeof(float)); /* (rows, Tk) scores of one task */
        double *inv = mallocCheck((size_t)rows * sizeof(double));  /* 1 / row sums */
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
        free(s);
        free(inv);
    }
}
