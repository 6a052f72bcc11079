/* linear.c — fast CPU Linear: one OpenBLAS sgemm (BLAS does its own threading). */
#include <cblas.h>
#include <string.h>

#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h" // defines: the ops' semantics (OpTable), op_conv2d_out

/* y (M,N) = x (M,K) · w (N,K)ᵀ + b (N). The bias is broadcast into y first, then sgemm adds onto it
 * (beta = 1), so the bias costs one pass over y and no extra buffer. */
void op_linear_cpu(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    float beta = 0.0f;
    if (b) {
        for (int m = 0; m < M; m++) memcpy(y + (size_t)m * N, b, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    if (K <= 0) { /* empty reduction: y = b (or 0) */
        if (!b) memset(y, 0, (size_t)M * N * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}
