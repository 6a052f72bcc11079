/* op_list.h — every entry of the op table (OpTable, kernels/ops.h) once, as X-macro lists: X(return type, name,
 * (parameters)) per op. ops.h declares OpTable's entries from them, and each backend its implementations'
 * prototypes (op_<name>_<backend>: kernels/cpu/cpu.h, kernels/cuda/cuda_ops.h) and its table, so a signature is
 * written here and at its documented op_* wrapper in ops.h only. Plain C, also read by the .cu files (C++). */
#ifndef LS_OP_LIST_H
#define LS_OP_LIST_H

#include <stddef.h>

struct AdamwArgs;
struct SamplerStepArgs;

/* Memory first (see ops.h's conventions): alloc returns 64-byte aligned bytes that this backend's ops and the
 * host can both read and write (CPU: aligned_alloc; CUDA: cudaMallocManaged), or NULL when out of memory (op_alloc
 * aborts then, op_try_alloc reports), free releases them (NULL is fine), sync waits for every op issued so far (CPU: nothing to wait for). Then the ops every compute backend
 * implements itself. */
#define LS_OPS(X) \
    X(void *, alloc, (size_t bytes)) \
    X(void, free, (void *p)) \
    X(void, sync, (void)) \
    X(void, linear, (float *y, const float *x, const float *w, const float *b, int M, int K, int N)) \
    X(void, conv2d, (float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, \
        int Cout, int k, int stride, int pad0, int pad1)) \
    X(void, groupnorm, (float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, \
        int G, float eps, int silu)) \
    X(void, layernorm, (float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps)) \
    X(void, attention, (float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, \
        int Dh, int causal)) \
    X(void, silu_inplace, (float *x, size_t n)) \
    X(void, gelu_inplace, (float *x, size_t n)) \
    X(void, quick_gelu_inplace, (float *x, size_t n)) \
    X(void, geglu, (float *y, const float *x, int N, int D)) \
    X(void, add_inplace, (float *y, const float *x, size_t n)) \
    X(void, add_channel_bias, (float *y, const float *v, int B, int C, int HW)) \
    X(void, upsample_nearest, (float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo)) \
    X(void, concat_channels, (float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW)) \
    X(void, nchw_to_ntc, (float *y, const float *x, int B, int C, int T)) \
    X(void, ntc_to_nchw, (float *y, const float *x, int B, int C, int T)) \
    X(void, timestep_embedding, (float *emb, const float *t, int B, int dim, float shift)) \
    X(void, gemm, (float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, \
        float alpha, float beta)) \
    X(int, num_threads, (void)) \
    X(void, linear_backward, (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, \
        int M, int K, int N)) \
    X(void, conv2d_backward, (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, \
        int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1)) \
    X(void, groupnorm_fwd_stats, (float *y, float *mean, float *rstd, const float *x, const float *gamma, \
        const float *beta, int B, int C, int HW, int G, float eps, int silu)) \
    X(void, groupnorm_backward, (float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, \
        const float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, \
        float eps, int silu)) \
    X(void, layernorm_fwd_stats, (float *y, float *mean, float *rstd, const float *x, const float *gamma, \
        const float *beta, int N, int D, float eps)) \
    X(void, layernorm_backward, (float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, \
        const float *rstd, const float *x, const float *gamma, int N, int D, float eps)) \
    X(void, attention_backward, (float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, \
        const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal)) \
    X(void, silu_backward, (float *dx, const float *dy, const float *x, size_t n)) \
    X(void, gelu_backward, (float *dx, const float *dy, const float *x, size_t n)) \
    X(void, quick_gelu_backward, (float *dx, const float *dy, const float *x, size_t n)) \
    X(void, geglu_backward, (float *dx, const float *dy, const float *x, int N, int D)) \
    X(void, add_channel_bias_backward, (float *dv, const float *dy, int B, int C, int HW)) \
    X(void, upsample_nearest_backward, (float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo)) \
    X(void, concat_channels_backward, (float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW)) \
    X(void, nchw_to_ntc_backward, (float *dx, const float *dy, int B, int C, int T)) \
    X(void, ntc_to_nchw_backward, (float *dx, const float *dy, int B, int C, int T)) \
    X(void, embedding, (float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D)) \
    X(void, cfg_combine, (float *eps, const float *cond, float g, size_t n)) \
    X(void, axpy, (float *y, float a, const float *x, size_t n)) \
    X(double, sum_squares, (const float *x, size_t n)) \
    X(void, adamw, (float *p, const float *g, float *m, float *v, size_t n, const struct AdamwArgs *a))

/* The ops the CPU backend runs as their plain serial references (op_*_ref in kernels/cpu/ref.c: the loss is then
 * the same sum at any thread count, and the sampling ops see a few thousand latent values per call); the CUDA
 * backend implements them too. */
#define LS_OPS_SERIAL(X) \
    X(double, mse_loss, (float *dout, const float *out, const float *target, const float *w, size_t hw, size_t n)) \
    X(void, sampler_step, (const struct SamplerStepArgs *a, float *x, float *prev, const float *mo, \
        const float *noise, size_t n)) \
    X(void, scale, (float *y, const float *x, float s, size_t n)) \
    X(void, divide, (float *y, const float *x, float d, size_t n))

#endif
