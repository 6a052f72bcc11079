/* cuda_base.cuh — what every .cu file of kernels/cuda shares (private to kernels/cuda): the backend's state (its one
 * stream, the cuBLAS and cuDNN handles), the error checks, the launch macro, scratch memory, and the warp and
 * block reductions.
 *
 * Errors: every CUDA, cuBLAS and cuDNN call goes through CU / CUBLAS / CUDNN, and every kernel launch through
 * LAUNCH. On failure one line names the op in progress and its shapes (each op records them on entry with
 * cuda_op), the failing call, file and line; then abort() — the CPU backend's mallocCheck style. Kernels run
 * asynchronously, so a fault inside one surfaces at a later call; CUDA_LAUNCH_BLOCKING=1 makes it surface in
 * the op that launched it.
 */
#ifndef LS_CUDA_BASE_CUH
#define LS_CUDA_BASE_CUH

#include <stddef.h>
#ifdef LS_CUDA_EMU /* the CPU emulation that checks these kernels without a GPU (scripts/gpu_emu_check.sh) */
#include "emu/cuda_emu.h"
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif
#ifdef LS_HAVE_CUDNN
#include <cudnn.h>
#endif

extern "C" {
#include "kbase.h" // defines: LS_ASSERT, LS_MIN, LS_MAX
#include "ops.h"   // defines: the ops' semantics (OpTable), AdamwArgs, SamplerStepArgs, op_conv2d_out
}
#include "cuda_ops.h" // defines: the op_*_cuda prototypes (C linkage)

/* The backend handle: created on the first op (cuda_backend), never torn down (the driver cleans up at exit). */
struct CudaBackend {
    cudaStream_t stream; /* every op's work, in issue order */
    cublasHandle_t blas; /* bound to stream; fp32 math (CUBLAS_COMPUTE_32F, no TF32) */
#ifdef LS_HAVE_CUDNN
    cudnnHandle_t dnn; /* bound to stream */
#endif
    int use_cudnn;     /* conv2d through cuDNN (when built with it) or im2col + cuBLAS */
    int attn_fused;    /* attention forward through the fused kernel (Dh <= ATTN_FUSED_DMAX) */
    int sms;           /* multiprocessors */
    int threads;       /* resident threads: multiprocessors × max threads per multiprocessor */
    double *result;    /* one device double: where the reductions leave their result */
};
CudaBackend *cuda_backend(void);
static inline cudaStream_t cuda_stream(void) { return cuda_backend()->stream; }

/* ---- errors ---- */

/* The op in progress and its shapes (names in dims, space-separated; values in v), for the error line. */
struct CudaOpScope {
    const char *op, *dims;
    long long v[12];
    int n;
};
extern thread_local CudaOpScope cuda_scope;
template <typename... T> static inline void cuda_op(const char *op, const char *dims, T... v) {
    long long a[] = {0, (long long)v...};
    cuda_scope.op = op, cuda_scope.dims = dims, cuda_scope.n = 0;
    for (size_t i = 1; i < sizeof a / sizeof a[0] && i <= 12; i++) cuda_scope.v[cuda_scope.n++] = a[i];
}
/* Print "lorastyle: CUDA error in OP (DIMS): NAME (TEXT) from CALL at FILE:LINE" and abort. */
[[noreturn]] void cuda_fail(const char *name, const char *text, const char *call, const char *file, int line);

#define CU(call)                                                                                                  \
    do {                                                                                                          \
        cudaError_t e_ = (call);                                                                                  \
        if (e_ != cudaSuccess) cuda_fail(cudaGetErrorName(e_), cudaGetErrorString(e_), #call, __FILE__, __LINE__); \
    } while (0)
#define CUBLAS(call)                                                                                              \
    do {                                                                                                          \
        cublasStatus_t s_ = (call);                                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                          \
            cuda_fail(cublasGetStatusName(s_), cublasGetStatusString(s_), #call, __FILE__, __LINE__);             \
    } while (0)
#ifdef LS_HAVE_CUDNN
#define CUDNN(call)                                                                                               \
    do {                                                                                                          \
        cudnnStatus_t s_ = (call);                                                                                \
        if (s_ != CUDNN_STATUS_SUCCESS) cuda_fail("cudnn", cudnnGetErrorString(s_), #call, __FILE__, __LINE__);  \
    } while (0)
#endif
/* kernel<<<grid, block>>>(args...) on the backend's stream, then the launch checked. */
#ifndef LS_CUDA_EMU
#define LAUNCH(kernel, grid, block, ...)                                                                          \
    do {                                                                                                          \
        kernel<<<(grid), (block), 0, cuda_stream()>>>(__VA_ARGS__);                                               \
        CU(cudaGetLastError());                                                                                   \
    } while (0)
#else
#define LAUNCH(kernel, grid, block, ...)                                                                          \
    do {                                                                                                          \
        emu_check_args(#kernel, __VA_ARGS__);                                                                     \
        emu_launch((grid), (block), [&]() { kernel(__VA_ARGS__); }, #kernel);                                     \
    } while (0)
#endif

/* ---- launch shapes and scratch ---- */

#define BLOCK 256 /* threads per block of the elementwise kernels */
/* Blocks for a grid-stride loop over n items: enough to fill the device, no more than the items need. */
static inline unsigned grid_for(size_t n) {
    size_t b = (n + BLOCK - 1) / BLOCK, cap = 4096;
    return (unsigned)(b < 1 ? 1 : b < cap ? b : cap);
}
#define GRID_STRIDE(i, n)                                                                                         \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* Device scratch for one op: stream-ordered (cudaMallocAsync / cudaFreeAsync on the backend's stream), served
 * from the driver's pool after the first use. */
void *cuda_scratch(size_t bytes);
void cuda_scratch_free(void *p);

/* Wait for the stream and return the double the last reduction left in cuda_backend()->result. */
double cuda_result(void);

/* ---- reductions (fixed order: the same inputs give the same bits on every run) ---- */

/* Butterfly sum / max over the 32 lanes; every lane gets the same value (IEEE + is commutative). */
template <typename T> __device__ inline T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. Every thread
 * of the block must call it (it synchronises). */
template <typename T> __device__ inline T block_sum(T v) {
    __shared__ T part[32];
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    T r = 0;
    for (unsigned w = 0; w < blockDim.x / 32; w++) r += part[w];
    __syncthreads(); /* part may be reused by the next call */
    return r;
}

/* ---- shared helpers (kernels/cuda/elementwise.cu) ---- */

/* y[b,c,:] = v[c] (B,C,HW): the bias a GEMM then accumulates onto (beta = 1). */
void cuda_fill_channels(float *y, const float *v, int B, int C, int HW);
/* out[c] += Σ_{b,hw} dy[b,c,hw] (per_batch = 0), or out[b·C + c] += Σ_hw dy[b,c,hw] (per_batch = 1); summed in
 * double, in a fixed order. */
void cuda_channel_sums(float *out, const float *dy, int B, int C, int HW, int per_batch);

/* ---- cuBLAS in row-major terms (kernels/cuda/gemm.cu) ----
 * C (M,N) = alpha · op(A) · op(B) + beta · C with leading dimensions lda, ldb, ldc (row strides); A is (M,K) or,
 * transA, (K,M); B is (K,N) or, transB, (N,K). fp32 in and out, fp32 accumulation (CUBLAS_COMPUTE_32F). The
 * batched form repeats it `batch` times at the given element strides. */
void cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);
void cuda_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                       long long strideA, const float *B, int ldb, long long strideB, float beta, float *C, int ldc,
                       long long strideC, int batch);

#endif
