/* linear_bwd.c — backward of op_linear_cpu (y = x·wᵀ + b), two sgemms and a column sum.
 *
 * With y (M,N) = x (M,K) · w (N,K)ᵀ + b:
 *   dx (M,K) = dy (M,N) · w (N,K)          ∂y[m,n]/∂x[m,k] = w[n,k]
 *   dw (N,K) += dy (M,N)ᵀ · x (M,K)        ∂y[m,n]/∂w[n,k] = x[m,k], summed over the M rows
 *   db (N)   += Σ_m dy[m,:]                ∂y[m,n]/∂b[n]   = 1
 * BLAS threads each sgemm itself (called from serial code, never inside an OpenMP region).
 */
#include <cblas.h>
#include <string.h>

#include "kbase.h"  // defines: LS_MIN
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out

#define COLS_PER_TASK 64 /* db: one thread sums a band of 64 columns (256 B of each dy row) */

void op_linear_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                        int M, int K, int N) {
    if (dx && M > 0 && K > 0) {
        if (N > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K, 0.0f, dx, K);
        } else {
            memset(dx, 0, (size_t)M * K * sizeof(float)); /* no outputs: x influences nothing */
        }
    }
    if (dw && M > 0 && N > 0 && K > 0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
    }
    if (db && M > 0 && N > 0) {
        /* Column sums in double, threads over bands of columns: each thread walks every row but only
         * its own columns, so no two threads write the same db[n] and the order is fixed. */
        int ntask = (N + COLS_PER_TASK - 1) / COLS_PER_TASK;
#pragma omp parallel for schedule(static) if ((size_t)M * N >= ((size_t)1 << 16))
        for (int t = 0; t < ntask; t++) {
            int n0 = t * COLS_PER_TASK, n1 = LS_MIN(n0 + COLS_PER_TASK, N);
            double acc[COLS_PER_TASK] = {0};
            for (int m = 0; m < M; m++) {
                const float *row = dy + (size_t)m * N;
                for (int n = n0; n < n1; n++) acc[n - n0] += row[n];
            }
            for (int n = n0; n < n1; n++) db[n] += (float)acc[n - n0];
        }
    }
}
