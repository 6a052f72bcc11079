/* cuda_emu.cpp — the emulation behind cuda_emu.h: the fiber scheduler that runs a block's threads with real
 * barrier and warp-shuffle semantics, the runtime calls, and cuBLAS's two GEMMs as checked naive loops.
 *
 * Fibers switch with a few instructions of x86-64 assembly (ucontext's swapcontext makes a system call at every
 * switch, and a warp shuffle is two switches per lane). Test tool only: x86-64 Linux, one host thread.
 */
#include "cuda_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>

/* ---- fibers ---- */

/* save the callee-saved registers, MXCSR and the x87 control word on this stack, store the stack pointer in
 * *from, load `to` and restore the same from there */
extern "C" void emu_switch(void **from, void *to);
__asm__(".text\n"
        ".globl emu_switch\n"
        ".type emu_switch,@function\n"
        "emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size emu_switch, .-emu_switch\n");

enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };
#define STACK_BYTES (64 << 10)
#define MAX_THREADS 1024

struct Fiber {
    void *sp;
    int state;
    EmuThread t;
};
static Fiber fibers[MAX_THREADS];
static char *stacks;     /* MAX_THREADS stacks of STACK_BYTES */
static void *sched_sp;   /* the scheduler's stack pointer while a fiber runs */
static int cur;          /* the fiber running */
static const std::function<void()> *body;
static const char *kernel_name;
static unsigned char slots[MAX_THREADS / 32][32][8]; /* shuffle values, per warp and lane */
EmuThread *emu_cur;

static void fail(const char *what) {
    fprintf(stderr, "cuda_emu: %s in kernel %s (block %u,%u,%u thread %u,%u,%u)\n", what, kernel_name,
            fibers[cur].t.bid.x, fibers[cur].t.bid.y, fibers[cur].t.bid.z, fibers[cur].t.tid.x, fibers[cur].t.tid.y,
            fibers[cur].t.tid.z);
    abort();
}

static void fiber_main(void) {
    (*body)();
    fibers[cur].state = DONE;
    emu_switch(&fibers[cur].sp, sched_sp);
    abort(); /* a finished fiber is never resumed */
}

/* a fresh stack whose first switch "returns" into fiber_main with the ABI's alignment */
static void *fresh_stack(int i) {
    uintptr_t top = (uintptr_t)(stacks + (size_t)(i + 1) * STACK_BYTES) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;                        /* above the return address: never used */
    *--sp = (uint64_t)fiber_main;     /* the return address, 16-byte aligned */
    for (int r = 0; r < 6; r++) *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
    uint32_t mx;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    *--sp = (uint64_t)mx | (uint64_t)cw << 32;
    return sp;
}

static void yield_as(int state) {
    fibers[cur].state = state;
    emu_switch(&fibers[cur].sp, sched_sp);
}

void __syncthreads(void) { yield_as(WAIT_BLOCK); }

void emu_shfl(unsigned mask, const void *mine, void *out, int src, size_t bytes, int xor_mode) {
    if (mask != 0xffffffffu) fail("warp shuffle with a partial mask");
    int w = cur / 32, lane = cur % 32; /* fiber i is the thread of linear index i */
    memcpy(slots[w][lane], mine, bytes);
    yield_as(WAIT_WARP); /* every lane has written */
    memcpy(out, slots[w][(xor_mode ? lane ^ src : src) & 31], bytes);
    yield_as(WAIT_WARP); /* every lane has read */
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &f, const char *name) {
    int n = (int)(block.x * block.y * block.z);
    kernel_name = name;
    if (n < 1 || n > MAX_THREADS) fail("bad block size");
    if (!stacks) stacks = (char *)aligned_alloc(64, (size_t)MAX_THREADS * STACK_BYTES);
    body = &f;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                for (int i = 0; i < n; i++) {
                    Fiber *fb = &fibers[i];
                    fb->t.tid = dim3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
                    fb->t.bid = dim3(bx, by, bz), fb->t.bdim = block, fb->t.gdim = grid;
                    fb->state = RUN;
                    fb->sp = fresh_stack(i);
                }
                for (;;) {
                    int live = 0, running = 0;
                    for (int i = 0; i < n; i++) {
                        if (fibers[i].state == RUN) {
                            cur = i, emu_cur = &fibers[i].t;
                            emu_switch(&sched_sp, fibers[i].sp);
                            running++;
                        }
                        live += fibers[i].state != DONE;
                    }
                    if (!live) break;
                    if (running) continue;
                    /* everyone waits: release the block barrier or the warps whose every lane waits */
                    int at_block = 0, released = 0;
                    for (int i = 0; i < n; i++) at_block += fibers[i].state == WAIT_BLOCK;
                    if (at_block == live) {
                        for (int i = 0; i < n; i++)
                            if (fibers[i].state == WAIT_BLOCK) fibers[i].state = RUN;
                        continue;
                    }
                    for (int w = 0; w * 32 < n; w++) {
                        int waiting = 0;
                        for (int i = w * 32; i < w * 32 + 32 && i < n; i++) waiting += fibers[i].state == WAIT_WARP;
                        if (waiting == 32) {
                            for (int i = w * 32; i < w * 32 + 32; i++) fibers[i].state = RUN;
                            released = 1;
                        }
                    }
                    if (!released) {
                        for (int i = 0; i < n; i++)
                            if (fibers[i].state != DONE) cur = i;
                        fail("deadlock: threads wait at different barriers, or a shuffle lacks some lanes");
                    }
                }
            }
    emu_cur = NULL;
}

/* ---- the runtime ---- */

const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }
const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int *n) { return *n = 1, cudaSuccess; }
cudaError_t cudaGetDevice(int *d) { return *d = 0, cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev) {
    *v = a == cudaDevAttrMultiProcessorCount ? 2 : 2048;
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) { return *s = NULL, cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { return cudaSuccess; }
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *p, int dev) { return *p = NULL, cudaSuccess; }
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t p, cudaMemPoolAttr a, void *v) { return cudaSuccess; }
/* the device memory handed out: start address → bytes */
static std::map<uintptr_t, size_t> device_mem;

void emu_check_ptr(const void *p, const char *where) {
    if (!p) return;
    uintptr_t a = (uintptr_t)p;
    auto it = device_mem.upper_bound(a);
    if (it != device_mem.begin() && (--it, a < it->first + it->second)) return;
    fprintf(stderr, "cuda_emu: %s was given %p, which is not device memory (host memory: an illegal address on a "
            "GPU)\n", where, p);
    abort();
}

cudaError_t cudaMalloc(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (*p) device_mem[(uintptr_t)*p] = n ? n : 1;
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaMallocManaged(void **p, size_t n, unsigned flags) { return cudaMalloc(p, n); }
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s) { return cudaMalloc(p, n); }
cudaError_t cudaFree(void *p) {
    if (p && !device_mem.erase((uintptr_t)p)) emu_check_ptr(p, "cudaFree"); /* not an allocation's start */
    return free(p), cudaSuccess;
}
cudaError_t cudaFreeAsync(void *p, cudaStream_t s) { return cudaFree(p); }
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) {
    emu_check_ptr(p, "cudaMemsetAsync");
    return memset(p, v, n), cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s) {
    if (k != cudaMemcpyHostToDevice && k != cudaMemcpyHostToHost) emu_check_ptr(src, "cudaMemcpyAsync (source)");
    if (k != cudaMemcpyDeviceToHost && k != cudaMemcpyHostToHost) emu_check_ptr(dst, "cudaMemcpyAsync (target)");
    return memmove(dst, src, n), cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind k, cudaStream_t s) {
    if (k != cudaMemcpyHostToDevice && k != cudaMemcpyHostToHost) emu_check_ptr(src, "cudaMemcpy2DAsync (source)");
    if (k != cudaMemcpyDeviceToHost && k != cudaMemcpyHostToHost) emu_check_ptr(dst, "cudaMemcpy2DAsync (target)");
    if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
    for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}

/* ---- cuBLAS: column-major C (m,n) = alpha·op(A)·op(B) + beta·C, accumulated in double ---- */

cublasStatus_t cublasCreate(cublasHandle_t *h) { return *h = NULL, CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusName(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}
const char *cublasGetStatusString(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "success" : "invalid value"; }

static cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    emu_check_ptr(A, "cuBLAS GEMM (A)");
    emu_check_ptr(B, "cuBLAS GEMM (B)");
    emu_check_ptr(C, "cuBLAS GEMM (C)");
    /* cuBLAS's argument checks */
    if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
        ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                double a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                double b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                s += a * b;
            }
            float *c = C + i + (size_t)j * ldc;
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t algo) {
    return gemm(ta, tb, m, n, k, *(const float *)alpha, (const float *)A, lda, (const float *)B, ldb,
                *(const float *)beta, (float *)C, ldc);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          long long sa, const void *B, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t comp, cublasGemmAlgo_t algo) {
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = gemm(ta, tb, m, n, k, *(const float *)alpha, (const float *)A + i * sa, lda,
                                (const float *)B + i * sb, ldb, *(const float *)beta, (float *)C + i * sc, ldc);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}
