/* cuda_ops.h — the CUDA backend's implementations of the op table (kernels/ops.h documents each op), its
 * memory, and what ops.c and the tests ask of it. Plain C prototypes: kernels/cuda/table.c (C) and
 * kernels/ops.c include this; the definitions live in the .cu files beside it, with C linkage. */
#ifndef LS_CUDA_OPS_H
#define LS_CUDA_OPS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct AdamwArgs;
struct SamplerStepArgs;

/* 1 when the CUDA runtime sees at least one device (cudaGetDeviceCount > 0; asked once), else 0. */
int ops_cuda_present(void);
/* Test hooks, both returning the setting now in force: conv2d through cuDNN (1) or im2col + cuBLAS (0),
 * and attention through the fused kernel (1) or the chunked cuBLAS path (0); -1 only asks. Asking cuDNN
 * for 1 in a build without it keeps 0. The defaults: cuDNN when built with it, the fused kernel — unless the
 * environment says LS_CUDA_NO_CUDNN=1 or LS_CUDA_NO_FUSED=1 when the backend starts. */
int ops_cuda_conv_cudnn(int on);
int ops_cuda_attention_fused(int on);

void *op_alloc_cuda(size_t bytes);
void op_free_cuda(void *p);
void op_sync_cuda(void);

void op_linear_cuda(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
void op_conv2d_cuda(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout,
                    int k, int stride, int pad0, int pad1);
void op_groupnorm_cuda(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                       float eps, int silu);
void op_layernorm_cuda(float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void op_attention_cuda(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH,
                       int Dh, int causal);
void op_silu_inplace_cuda(float *x, size_t n);
void op_gelu_inplace_cuda(float *x, size_t n);
void op_quick_gelu_inplace_cuda(float *x, size_t n);
void op_geglu_cuda(float *y, const float *x, int N, int D);
void op_add_inplace_cuda(float *y, const float *x, size_t n);
void op_add_channel_bias_cuda(float *y, const float *v, int B, int C, int HW);
void op_upsample_nearest_cuda(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);
void op_concat_channels_cuda(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void op_nchw_to_ntc_cuda(float *y, const float *x, int B, int C, int T);
void op_ntc_to_nchw_cuda(float *y, const float *x, int B, int C, int T);
void op_timestep_embedding_cuda(float *emb, const float *t, int B, int dim, float shift);
void op_gemm_cuda(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha,
                  float beta);
int op_num_threads_cuda(void);
void op_linear_backward_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                             int K, int N);
void op_conv2d_backward_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B,
                             int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1);
void op_groupnorm_fwd_stats_cuda(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                 const float *beta, int B, int C, int HW, int G, float eps, int silu);
void op_groupnorm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                                const float *rstd, const float *x, const float *gamma, const float *beta, int B,
                                int C, int HW, int G, float eps, int silu);
void op_layernorm_fwd_stats_cuda(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                 const float *beta, int N, int D, float eps);
void op_layernorm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                                const float *rstd, const float *x, const float *gamma, int N, int D, float eps);
void op_attention_backward_cuda(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal);
void op_silu_backward_cuda(float *dx, const float *dy, const float *x, size_t n);
void op_gelu_backward_cuda(float *dx, const float *dy, const float *x, size_t n);
void op_quick_gelu_backward_cuda(float *dx, const float *dy, const float *x, size_t n);
void op_geglu_backward_cuda(float *dx, const float *dy, const float *x, int N, int D);
void op_add_channel_bias_backward_cuda(float *dv, const float *dy, int B, int C, int HW);
void op_upsample_nearest_backward_cuda(float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo);
void op_concat_channels_backward_cuda(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW);
void op_nchw_to_ntc_backward_cuda(float *dx, const float *dy, int B, int C, int T);
void op_ntc_to_nchw_backward_cuda(float *dx, const float *dy, int B, int C, int T);
void op_embedding_cuda(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D);
void op_cfg_combine_cuda(float *eps, const float *cond, float g, size_t n);
void op_axpy_cuda(float *y, float a, const float *x, size_t n);
double op_sum_squares_cuda(const float *x, size_t n);
void op_adamw_cuda(float *p, const float *g, float *m, float *v, size_t n, const struct AdamwArgs *a);
double op_mse_loss_cuda(float *dout, const float *out, const float *target, const float *w, size_t hw, size_t n);
void op_sampler_step_cuda(const struct SamplerStepArgs *a, float *x, float *prev, const float *mo, const float *noise,
                          size_t n);
void op_scale_cuda(float *y, const float *x, float s, size_t n);
void op_divide_cuda(float *y, const float *x, float d, size_t n);

#ifdef __cplusplus
}
#endif

#endif
