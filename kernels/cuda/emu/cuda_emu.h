/* cuda_emu.h — a CPU emulation of the part of CUDA, the CUDA runtime and cuBLAS that kernels/cuda uses, so that
 * the backend's kernels can be run and checked on a machine without a GPU (scripts/gpu_emu_check.sh builds
 * test_ops that way; the real build never includes this file).
 *
 * Each block runs its threads as fibers on one host thread (cuda_emu.cpp): a thread runs until it reaches
 * __syncthreads or a warp shuffle, and the scheduler releases a barrier once every live thread of the block
 * (or of the warp) has reached it — so __shared__ memory (a static array here, one per kernel), barriers and
 * shuffles behave as on the device, and a barrier that some threads never reach aborts with the kernel's name.
 * Launches run at once (the stream is the program order). Managed memory is plain host memory. cuBLAS's GEMMs are
 * naive loops that also check the arguments as cuBLAS does (leading dimensions), and return its error codes.
 * Not emulated: cuDNN (the emulated build takes the im2col path), data races, the device's float rounding
 * (host libm instead of CUDA's math library; FMA contraction as the host compiler chooses).
 */
#ifndef LS_CUDA_EMU_H
#define LS_CUDA_EMU_H

#include <functional>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the language ---- */
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct EmuThread {
    dim3 tid, bid, bdim, gdim;
};
extern EmuThread *emu_cur; /* the thread running now */
#define threadIdx (emu_cur->tid)
#define blockIdx (emu_cur->bid)
#define blockDim (emu_cur->bdim)
#define gridDim (emu_cur->gdim)

void __syncthreads(void);
/* the warp's exchange: every lane of the warp must call it (full mask), each gets the value of lane `src`
 * (or, xor_mode, of lane ^ src) */
void emu_shfl(unsigned mask, const void *mine, void *out, int src, size_t bytes, int xor_mode);
template <typename T> T __shfl_sync(unsigned mask, T v, int src) {
    T r;
    emu_shfl(mask, &v, &r, src, sizeof(T), 0);
    return r;
}
template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    T r;
    emu_shfl(mask, &v, &r, lane_mask, sizeof(T), 1);
    return r;
}
static inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* run body once per thread of every block of the grid (blocks one after another) */
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body, const char *name);

/* Device memory check: every pointer a kernel, a copy or a GEMM is given must lie inside memory from
 * cudaMalloc / cudaMallocManaged / cudaMallocAsync (NULL is fine). On a GPU, host memory (malloc, a mapped file,
 * the stack) is an illegal address; here it is caught on the CPU with the kernel's name. */
void emu_check_ptr(const void *p, const char *where);
template <typename T> void emu_check_arg(const char *, const T &) {}
template <typename T> void emu_check_arg(const char *where, T *p) { emu_check_ptr((const void *)p, where); }
template <typename... A> void emu_check_args(const char *where, const A &...a) { (emu_check_arg(where, a), ...); }

/* ---- the runtime ---- */
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
typedef struct EmuStream *cudaStream_t;
typedef struct EmuMemPool *cudaMemPool_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice,
                      cudaMemcpyDefault };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount, cudaDevAttrMaxThreadsPerMultiProcessor };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold };
#define cudaStreamNonBlocking 1u
#define cudaMemAttachGlobal 1u

const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *p, int dev);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t p, cudaMemPoolAttr a, void *v);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaMallocManaged(void **p, size_t n, unsigned flags);
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s);
cudaError_t cudaFree(void *p);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind k, cudaStream_t s);

/* ---- cuBLAS ---- */
typedef struct EmuBlas *cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 };
typedef enum { CUBLAS_OP_N, CUBLAS_OP_T } cublasOperation_t;
typedef enum { CUDA_R_32F } cudaDataType;
typedef enum { CUBLAS_COMPUTE_32F } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT } cublasGemmAlgo_t;
typedef enum { CUBLAS_DEFAULT_MATH } cublasMath_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusName(cublasStatus_t s);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          long long sa, const void *B, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t comp, cublasGemmAlgo_t algo);

#endif
