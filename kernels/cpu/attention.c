/* attention.c — fast CPU multi-head attention: per (batch, head), per chunk of query rows,
 *   S = scale · Q Kᵀ (sgemm) → row softmax in float (OpenMP) → O = P V (sgemm).
 *
 * Only one chunk of scores, (rows, Tk) with rows*Tk <= ATTN_SCORE_FLOATS, exists at a time: SD1.5
 * self-attention at 512x512 has T = 4096, and a full head's scores would be 64 MiB (x 8 heads). Heads are
 * read in place from the (B, T, NH*Dh) layout through the GEMM leading dimension, so there is no transpose.
 * The GEMMs are threaded by BLAS and the softmax by OpenMP, never one inside the other.
 */
#include <cblas.h>
#include <math.h>

#include "common.h" // defines: mallocCheck, LS_ASSERT, LS_MIN, LS_MAX
#include "ops.h"    // defines: op_attention

#define ATTN_SCORE_FLOATS ((size_t)1 << 20) /* 4 MiB of scores per chunk */

/* In place on s (n, ld): row t is query i0+t; keys [0, nk) are live, or [0, i0+t] when causal (the rest
 * become exact zeros). Softmax in float with the row max subtracted; the row sum is accumulated in double
 * (a sequential float sum over Tk = 4096 terms costs ~1e-5 relative, 10x PyTorch's error). */
static void softmax_rows(float *s, int n, int ld, int nk, int i0, int causal) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        float *row = s + (size_t)t * ld;
        int live = causal ? i0 + t + 1 : nk; /* causal: key j > query i is masked (−inf → 0) */
        float mx = -INFINITY;
        double sum = 0.0;
        for (int j = 0; j < live; j++) mx = row[j] > mx ? row[j] : mx;
        for (int j = 0; j < live; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < live; j++) row[j] *= inv;
        for (int j = live; j < nk; j++) row[j] = 0.0f;
    }
}

/* q (B,Tq,NH*Dh), k and v (B,Tk,NH*Dh) → out (B,Tq,NH*Dh). */
void op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                  int NH, int Dh, int causal) {
    LS_ASSERT(!causal || Tq == Tk);
    int C = NH * Dh; /* row stride of every operand */
    float scale = 1.0f / sqrtf((float)Dh);
    int rows = (int)LS_MAX((size_t)1, LS_MIN((size_t)Tq, ATTN_SCORE_FLOATS / (size_t)Tk));
    float *s = mallocCheck((size_t)rows * Tk * sizeof(float)); /* (rows, Tk) scores of one chunk */

    for (int bi = 0; bi < B; bi++) {
        for (int h = 0; h < NH; h++) {
            const float *qh = q + (size_t)bi * Tq * C + (size_t)h * Dh; /* (Tq, Dh), ld C */
            const float *kh = k + (size_t)bi * Tk * C + (size_t)h * Dh; /* (Tk, Dh), ld C */
            const float *vh = v + (size_t)bi * Tk * C + (size_t)h * Dh; /* (Tk, Dh), ld C */
            float *oh = out + (size_t)bi * Tq * C + (size_t)h * Dh;     /* (Tq, Dh), ld C */
            for (int i0 = 0; i0 < Tq; i0 += rows) {
                int n = LS_MIN(rows, Tq - i0);
                int nk = causal ? i0 + n : Tk; /* causal: later keys are masked for every row here */
                /* s (n, nk) = scale · q[i0:i0+n] · k[0:nk]ᵀ */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nk, Dh, scale, qh + (size_t)i0 * C, C,
                            kh, C, 0.0f, s, nk);
                softmax_rows(s, n, nk, nk, i0, causal);
                /* out[i0:i0+n] (n, Dh) = p (n, nk) · v[0:nk] (nk, Dh) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Dh, nk, 1.0f, s, nk, vh, C, 0.0f,
                            oh + (size_t)i0 * C, C);
            }
        }
    }
    free(s);
}
