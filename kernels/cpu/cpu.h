/* cpu.h — the CPU backend's implementations (OpenMP + BLAS) of the op table (kernels/ops.h documents each). */
#ifndef LS_KERNELS_CPU_H
#define LS_KERNELS_CPU_H

#include <stddef.h>

void *op_alloc_cpu(size_t bytes);
void op_free_cpu(void *p);
void op_sync_cpu(void);

void op_linear_cpu(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
void op_conv2d_cpu(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout,
                   int k, int stride, int pad0, int pad1);
void op_groupnorm_cpu(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                      float eps, int silu);
void op_layernorm_cpu(float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void op_attention_cpu(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH,
                      int Dh, int causal);
void op_silu_inplace_cpu(float *x, size_t n);
void op_gelu_inplace_cpu(float *x, size_t n);
void op_quick_gelu_inplace_cpu(float *x, size_t n);
void op_geglu_cpu(float *y, const float *x, int N, int D);
void op_add_inplace_cpu(float *y, const float *x, size_t n);
void op_add_channel_bias_cpu(float *y, const float *v, int B, int C, int HW);
void op_upsample_nearest_cpu(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);
void op_concat_channels_cpu(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void op_nchw_to_ntc_cpu(float *y, const float *x, int B, int C, int T);
void op_ntc_to_nchw_cpu(float *y, const float *x, int B, int C, int T);
void op_timestep_embedding_cpu(float *emb, const float *t, int B, int dim, float shift);
void op_gemm_cpu(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha,
                 float beta);
int op_num_threads_cpu(void);
void op_linear_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                            int K, int N);
void op_conv2d_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B,
                            int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1);
void op_groupnorm_fwd_stats_cpu(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                const float *beta, int B, int C, int HW, int G, float eps, int silu);
void op_groupnorm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                               const float *rstd, const float *x, const float *gamma, const float *beta, int B,
                               int C, int HW, int G, float eps, int silu);
void op_layernorm_fwd_stats_cpu(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                const float *beta, int N, int D, float eps);
void op_layernorm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                               const float *rstd, const float *x, const float *gamma, int N, int D, float eps);
void op_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                               const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal);
void op_silu_backward_cpu(float *dx, const float *dy, const float *x, size_t n);
void op_gelu_backward_cpu(float *dx, const float *dy, const float *x, size_t n);
void op_quick_gelu_backward_cpu(float *dx, const float *dy, const float *x, size_t n);
void op_geglu_backward_cpu(float *dx, const float *dy, const float *x, int N, int D);
void op_add_channel_bias_backward_cpu(float *dv, const float *dy, int B, int C, int HW);
void op_upsample_nearest_backward_cpu(float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo);
void op_concat_channels_backward_cpu(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW);
void op_nchw_to_ntc_backward_cpu(float *dx, const float *dy, int B, int C, int T);
void op_ntc_to_nchw_backward_cpu(float *dx, const float *dy, int B, int C, int T);
void op_embedding_cpu(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D);
void op_cfg_combine_cpu(float *eps, const float *cond, float g, size_t n);
void op_axpy_cpu(float *y, float a, const float *x, size_t n);
double op_sum_squares_cpu(const float *x, size_t n);
struct AdamwArgs;
void op_adamw_cpu(float *p, const float *g, float *m, float *v, size_t n, const struct AdamwArgs *a);

/* shared by the nearest resize and its backward (layout.c): the source index of output position dst for a
 * resize in → out (PyTorch's float-scale rule), and the source column of each of Wo output columns for
 * W → Wo (pool_alloc'd; pool_free it) */
int nearest_src(int dst, int in, int out);
int *nearest_src_cols(int W, int Wo);

#endif
