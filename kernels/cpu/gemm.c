/* gemm.c — op_gemm_cpu (cblas_sgemm) and its plain reference. */
#include <cblas.h>

#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable)

void op_gemm_cpu(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
             float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, transA ? M : K, B, transB ? K : N, beta, C, N);
}

void op_gemm_ref(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                 float alpha, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = transA ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
                double b = transB ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
                s += a * b;
            }
            float *c = &C[(size_t)i * N + j];
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}
