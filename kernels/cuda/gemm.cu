/* gemm.cu — the matrix products through cuBLAS: op_gemm, op_linear and its backward, and the row-major
 * wrappers the other ops use (cuda_gemm, cuda_gemm_batched).
 *
 * cuBLAS is column-major; a row-major C (M,N) is the column-major Cᵀ (N,M), and Cᵀ = op(B)ᵀ·op(A)ᵀ, so every
 * row-major product is one cuBLAS call with the operands swapped. fp32 in, fp32 out, fp32 accumulation
 * (cublasGemmEx with CUBLAS_COMPUTE_32F): correctness first. Next: CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores
 * on fp32 data, ~10 bits of mantissa in the products), then bf16 operands (CUDA_R_16BF) with fp32
 * accumulation once the activations are stored in bf16; cublasLt with a bias epilogue for op_linear.
 */
#include "cuda_base.cuh" // defines: CUBLAS, LAUNCH, cuda_gemm, cuda_op

/* C (M,N; row stride ldc) *= beta (= 0 when beta is 0): the product of an empty reduction (K = 0) */
__global__ void scale_rows(float *C, int M, int N, int ldc, float beta) {
    GRID_STRIDE(i, (size_t)M * N) {
        float *c = C + i / N * ldc + i % N;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

void cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        LAUNCH(scale_rows, grid_for((size_t)M * N), BLOCK, C, M, N, ldc, beta);
        return;
    }
    CUBLAS(cublasGemmEx(cuda_backend()->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                        N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void cuda_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                       long long strideA, const float *B, int ldb, long long strideB, float beta, float *C, int ldc,
                       long long strideC, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    CUBLAS(cublasGemmStridedBatchedEx(cuda_backend()->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_32F, ldb,
                                      strideB, A, CUDA_R_32F, lda, strideA, &beta, C, CUDA_R_32F, ldc, strideC, batch,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" void op_gemm_cuda(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                             float alpha, float beta) {
    cuda_op("gemm", "M N K transA transB", M, N, K, transA, transB);
    cuda_gemm(transA, transB, M, N, K, alpha, A, transA ? M : K, B, transB ? K : N, beta, C, N);
}

/* y (M,N) = b broadcast over the rows */
__global__ void rows_fill(float *y, const float *b, int M, int N) {
    GRID_STRIDE(i, (size_t)M * N) y[i] = b[i % N];
}

/* y (M,N) = x (M,K) · w (N,K)ᵀ + b: the bias broadcast into y first, then the product added (beta = 1). */
extern "C" void op_linear_cuda(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    cuda_op("linear", "M K N bias", M, K, N, b != NULL);
    if (M <= 0 || N <= 0) return;
    size_t n = (size_t)M * N;
    if (b) LAUNCH(rows_fill, grid_for(n), BLOCK, y, b, M, N);
    else if (K <= 0) CU(cudaMemsetAsync(y, 0, n * sizeof(float), cuda_stream()));
    if (K > 0) cuda_gemm(0, 1, M, N, K, 1.0f, x, K, w, K, b ? 1.0f : 0.0f, y, N);
}

/* db[n] += Σ_m dy[m,n] in double. A block takes 32 columns; its 8 warps each sum every 8th row of them (lane =
 * column, so the reads are coalesced), then warp 0 adds the 8 partial sums in warp order. */
__global__ void col_sums(float *db, const float *dy, int M, int N) {
    __shared__ double part[8][32];
    int lane = threadIdx.x % 32, wp = threadIdx.x / 32, n = blockIdx.x * 32 + lane;
    double acc = 0.0;
    if (n < N)
        for (int m = wp; m < M; m += 8) acc += dy[(size_t)m * N + n];
    part[wp][lane] = acc;
    __syncthreads();
    if (wp == 0 && n < N) {
        double s = 0.0;
        for (int i = 0; i < 8; i++) s += part[i][lane];
        db[n] += (float)s;
    }
}

/* dx (M,K) = dy (M,N) · w (N,K);  dw (N,K) += dyᵀ · x;  db (N) += Σ_m dy. */
extern "C" void op_linear_backward_cuda(float *dx, float *dw, float *db, const float *dy, const float *x,
                                        const float *w, int M, int K, int N) {
    cuda_op("linear_backward", "M K N dx dw db", M, K, N, dx != NULL, dw != NULL, db != NULL);
    if (dx && M > 0 && K > 0) {
        if (N > 0) cuda_gemm(0, 0, M, K, N, 1.0f, dy, N, w, K, 0.0f, dx, K);
        else CU(cudaMemsetAsync(dx, 0, (size_t)M * K * sizeof(float), cuda_stream()));
    }
    if (dw && M > 0 && N > 0 && K > 0) cuda_gemm(1, 0, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
    if (db && M > 0 && N > 0) LAUNCH(col_sums, (N + 31) / 32, 256, db, dy, M, N);
}
