/* backend.cu — the CUDA backend's state and memory: the lazily created backend (stream, cuBLAS and cuDNN
 * handles), alloc/free/sync of the op table, device presence, the error line, scratch memory.
 *
 * Memory: op_alloc_cuda hands out managed memory (cudaMallocManaged), so the host, the CPU references and the
 * kernels read and write the same buffers; on Linux with a Pascal-or-later GPU (concurrentManagedAccess) the
 * host may touch them while kernels run, and pages migrate on first touch. Next steps for speed: advise /
 * prefetch the pool's slab to the device (cudaMemAdvise, cudaMemPrefetchAsync) once kernels/pool.c allocates
 * through ls_ops->alloc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_base.cuh" // defines: CudaBackend, CU, CUBLAS, CUDNN, cuda_op

thread_local CudaOpScope cuda_scope = {"(no op)", "", {0}, 0};

void cuda_fail(const char *name, const char *text, const char *call, const char *file, int line) {
    char dims[256] = "", *p = dims;
    const char *d = cuda_scope.dims ? cuda_scope.dims : "";
    for (int i = 0; i < cuda_scope.n && p < dims + sizeof dims - 40; i++) { /* "name=value" per dimension */
        while (*d == ' ') d++;
        int len = (int)strcspn(d, " ");
        p += snprintf(p, dims + sizeof dims - p, "%s%.*s=%lld", i ? " " : "", len, d, cuda_scope.v[i]);
        d += len;
    }
    fprintf(stderr, "lorastyle: CUDA error in %s (%s): %s (%s) from %s at %s:%d\n", cuda_scope.op, dims, name, text,
            call, file, line);
    abort();
}

static CudaBackend backend;
static int backend_ready;

CudaBackend *cuda_backend(void) {
    if (backend_ready) return &backend;
    CudaBackend *b = &backend;
    int dev = 0;
    CU(cudaGetDevice(&dev));
    CU(cudaDeviceGetAttribute(&b->sms, cudaDevAttrMultiProcessorCount, dev));
    int per_sm = 0;
    CU(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, dev));
    b->threads = b->sms * per_sm;
    CU(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking));
    CUBLAS(cublasCreate(&b->blas));
    CUBLAS(cublasSetStream(b->blas, b->stream));
    CUBLAS(cublasSetMathMode(b->blas, CUBLAS_DEFAULT_MATH)); /* fp32 stays fp32: no TF32 behind our back */
    /* LS_CUDA_NO_CUDNN=1, LS_CUDA_NO_FUSED=1: the always-present paths (im2col + cuBLAS, chunked attention) */
    const char *no_dnn = getenv("LS_CUDA_NO_CUDNN"), *no_fused = getenv("LS_CUDA_NO_FUSED");
#ifdef LS_HAVE_CUDNN
    CUDNN(cudnnCreate(&b->dnn));
    CUDNN(cudnnSetStream(b->dnn, b->stream));
    b->use_cudnn = !(no_dnn && *no_dnn == '1');
#endif
    (void)no_dnn;
    b->attn_fused = !(no_fused && *no_fused == '1');
    /* keep freed scratch in the stream-ordered pool instead of returning it to the driver at every sync */
    cudaMemPool_t pool;
    CU(cudaDeviceGetDefaultMemPool(&pool, dev));
    unsigned long long keep = ~0ULL;
    CU(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    CU(cudaMalloc((void **)&b->result, sizeof(double)));
    backend_ready = 1;
    return b;
}

int ops_cuda_present(void) {
    static int present = -1;
    if (present < 0) {
        int n = 0;
        present = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
        cudaGetLastError(); /* clear the error a machine without a driver or device leaves */
    }
    return present;
}

int ops_cuda_conv_cudnn(int on) {
    CudaBackend *b = cuda_backend();
#ifdef LS_HAVE_CUDNN
    if (on >= 0) b->use_cudnn = on != 0;
#endif
    return b->use_cudnn;
}

int ops_cuda_attention_fused(int on) {
    CudaBackend *b = cuda_backend();
    if (on >= 0) b->attn_fused = on != 0;
    return b->attn_fused;
}

void *op_alloc_cuda(size_t bytes) {
    cuda_op("alloc", "bytes", bytes);
    void *p = NULL;
    cudaError_t e = cudaMallocManaged(&p, bytes ? bytes : 1, cudaMemAttachGlobal);
    if (e == cudaErrorMemoryAllocation) { /* the caller decides: op_alloc aborts, op_try_alloc reports */
        cudaGetLastError();
        return NULL;
    }
    CU(e);
    return p;
}

void op_free_cuda(void *p) {
    if (!p) return;
    cuda_op("free", "");
    if (backend_ready) CU(cudaStreamSynchronize(backend.stream)); /* no queued op may still use p */
    CU(cudaFree(p));
}

void op_sync_cuda(void) {
    if (!backend_ready) return; /* no op has run */
    cuda_op("sync", "");
    CU(cudaStreamSynchronize(backend.stream));
}

int op_num_threads_cuda(void) {
    op_sync_cuda();
    return cuda_backend()->threads;
}

void *cuda_scratch(size_t bytes) {
    void *p = NULL;
    CU(cudaMallocAsync(&p, bytes ? bytes : 1, cuda_stream()));
    return p;
}

void cuda_scratch_free(void *p) {
    if (p) CU(cudaFreeAsync(p, cuda_stream()));
}

double cuda_result(void) {
    double r = 0.0;
    CU(cudaMemcpyAsync(&r, cuda_backend()->result, sizeof r, cudaMemcpyDeviceToHost, cuda_stream()));
    CU(cudaStreamSynchronize(cuda_stream()));
    return r;
}
