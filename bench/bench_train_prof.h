/* bench_train_prof.h — per-op timing for bench_train (bench/profile_train.sh builds it): with -DLS_PROFILE_OPS and
 * -Wl,--wrap=op_X for each op below, every call of a kernel op from the library goes through a wrapper that
 * adds its wall time to a per-(op, phase, base/LoRA) counter. Outermost op only (depth counter).
 * LoRA calls are told apart by their weight pointer (an adapter's down/up; op_gemm is only used by hooks). */
#ifndef LS_BENCH_TRAIN_PROF_H
#define LS_BENCH_TRAIN_PROF_H
#include <stdio.h>
#include "common.h"
#include "ops.h"

#define PROF_MAX 128
static const char *prof_phase = "other"; /* set by the bench: "fwd", "bwd", "opt", "infer" */
static int prof_depth = 0, prof_n = 0, prof_nl = 0;
static const float **prof_lora_w; /* every adapter down/up buffer */
static int prof_is_lora(const float *w) {
    for (int i = 0; i < prof_nl; i++)
        if (prof_lora_w[i] == w) return 1;
    return 0;
}
static struct { const char *op, *phase; int lora; double s; long calls; } prof_tab[PROF_MAX];

static void prof_add(const char *op, int lora, double s) {
    for (int i = 0; i < prof_n; i++)
        if (prof_tab[i].op == op && prof_tab[i].phase == prof_phase && prof_tab[i].lora == lora) {
            prof_tab[i].s += s, prof_tab[i].calls++;
            return;
        }
    if (prof_n < PROF_MAX) {
        prof_tab[prof_n].op = op, prof_tab[prof_n].phase = prof_phase, prof_tab[prof_n].lora = lora;
        prof_tab[prof_n].s = s, prof_tab[prof_n++].calls = 1;
    }
}
static void prof_reset(void) { prof_n = 0; }
static int prof_cmp(const void *a, const void *b) {
    double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x < y) - (x > y);
}
/* Print the table, largest first, as seconds per step (steps: how many steps the counters cover). */
static void prof_print(int steps) {
    double idx[PROF_MAX][2], tot = 0;
    for (int i = 0; i < prof_n; i++) idx[i][0] = prof_tab[i].s, idx[i][1] = i, tot += prof_tab[i].s;
    qsort(idx, (size_t)prof_n, sizeof idx[0], prof_cmp);
    printf("profile (seconds per step, outermost kernel ops; %d steps):\n", steps);
    for (int j = 0; j < prof_n; j++) {
        int i = (int)idx[j][1];
        printf("  %-6s %-30s %-5s %9.4f s  %6ld calls\n", prof_tab[i].phase, prof_tab[i].op,
               prof_tab[i].lora ? "lora" : "base", prof_tab[i].s / steps, prof_tab[i].calls / steps);
    }
    printf("  all ops: %.4f s per step\n", tot / steps);
}

void __real_op_add_channel_bias(float *y, const float *v, int B, int C, int HW);
void __wrap_op_add_channel_bias(float *y, const float *v, int B, int C, int HW);
void __wrap_op_add_channel_bias(float *y, const float *v, int B, int C, int HW) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_add_channel_bias(y, v, B, C, HW);
    prof_depth--;
    if (!prof_depth) prof_add("op_add_channel_bias", 0, ls_time() - t0);
}

void __real_op_add_channel_bias_backward(float *dv, const float *dy, int B, int C, int HW);
void __wrap_op_add_channel_bias_backward(float *dv, const float *dy, int B, int C, int HW);
void __wrap_op_add_channel_bias_backward(float *dv, const float *dy, int B, int C, int HW) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_add_channel_bias_backward(dv, dy, B, C, HW);
    prof_depth--;
    if (!prof_depth) prof_add("op_add_channel_bias_backward", 0, ls_time() - t0);
}

void __real_op_add_inplace(float *y, const float *x, size_t n);
void __wrap_op_add_inplace(float *y, const float *x, size_t n);
void __wrap_op_add_inplace(float *y, const float *x, size_t n) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_add_inplace(y, x, n);
    prof_depth--;
    if (!prof_depth) prof_add("op_add_inplace", 0, ls_time() - t0);
}

void __real_op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal);
void __wrap_op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal);
void __wrap_op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_attention(out, q, k, v, B, Tq, Tk, NH, Dh, causal);
    prof_depth--;
    if (!prof_depth) prof_add("op_attention", 0, ls_time() - t0);
}

void __real_op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal);
void __wrap_op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal);
void __wrap_op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh, int causal) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_attention_backward(dq, dk, dv, dout, q, k, v, B, Tq, Tk, NH, Dh, causal);
    prof_depth--;
    if (!prof_depth) prof_add("op_attention_backward", 0, ls_time() - t0);
}

void __real_op_concat_channels(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void __wrap_op_concat_channels(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void __wrap_op_concat_channels(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_concat_channels(y, a, b, B, Ca, Cb, HW);
    prof_depth--;
    if (!prof_depth) prof_add("op_concat_channels", 0, ls_time() - t0);
}

void __real_op_concat_channels_backward(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW);
void __wrap_op_concat_channels_backward(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW);
void __wrap_op_concat_channels_backward(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_concat_channels_backward(da, db, dy, B, Ca, Cb, HW);
    prof_depth--;
    if (!prof_depth) prof_add("op_concat_channels_backward", 0, ls_time() - t0);
}

void __real_op_conv2d(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1);
void __wrap_op_conv2d(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1);
void __wrap_op_conv2d(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_conv2d(y, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    prof_depth--;
    if (!prof_depth) prof_add("op_conv2d", prof_is_lora(w), ls_time() - t0);
}

void __real_op_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1);
void __wrap_op_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1);
void __wrap_op_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_conv2d_backward(dx, dw, db, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    prof_depth--;
    if (!prof_depth) prof_add("op_conv2d_backward", prof_is_lora(w), ls_time() - t0);
}

void __real_op_geglu(float *y, const float *x, int N, int D);
void __wrap_op_geglu(float *y, const float *x, int N, int D);
void __wrap_op_geglu(float *y, const float *x, int N, int D) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_geglu(y, x, N, D);
    prof_depth--;
    if (!prof_depth) prof_add("op_geglu", 0, ls_time() - t0);
}

void __real_op_geglu_backward(float *dx, const float *dy, const float *x, int N, int D);
void __wrap_op_geglu_backward(float *dx, const float *dy, const float *x, int N, int D);
void __wrap_op_geglu_backward(float *dx, const float *dy, const float *x, int N, int D) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_geglu_backward(dx, dy, x, N, D);
    prof_depth--;
    if (!prof_depth) prof_add("op_geglu_backward", 0, ls_time() - t0);
}

void __real_op_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha, float beta);
void __wrap_op_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha, float beta);
void __wrap_op_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha, float beta) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_gemm(C, A, B, M, N, K, transA, transB, alpha, beta);
    prof_depth--;
    if (!prof_depth) prof_add("op_gemm", 1, ls_time() - t0);
}

void __real_op_groupnorm(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu);
void __wrap_op_groupnorm(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu);
void __wrap_op_groupnorm(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_groupnorm(y, x, gamma, beta, B, C, HW, G, eps, silu);
    prof_depth--;
    if (!prof_depth) prof_add("op_groupnorm", 0, ls_time() - t0);
}

void __real_op_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu);
void __wrap_op_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu);
void __wrap_op_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_groupnorm_backward(dx, dgamma, dbeta, dy, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
    prof_depth--;
    if (!prof_depth) prof_add("op_groupnorm_backward", 0, ls_time() - t0);
}

void __real_op_groupnorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu);
void __wrap_op_groupnorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu);
void __wrap_op_groupnorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_groupnorm_fwd_stats(y, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
    prof_depth--;
    if (!prof_depth) prof_add("op_groupnorm_fwd_stats", 0, ls_time() - t0);
}

void __real_op_layernorm(float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void __wrap_op_layernorm(float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void __wrap_op_layernorm(float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_layernorm(y, x, gamma, beta, N, D, eps);
    prof_depth--;
    if (!prof_depth) prof_add("op_layernorm", 0, ls_time() - t0);
}

void __real_op_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd, const float *x, const float *gamma, int N, int D, float eps);
void __wrap_op_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd, const float *x, const float *gamma, int N, int D, float eps);
void __wrap_op_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd, const float *x, const float *gamma, int N, int D, float eps) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_layernorm_backward(dx, dgamma, dbeta, dy, mean, rstd, x, gamma, N, D, eps);
    prof_depth--;
    if (!prof_depth) prof_add("op_layernorm_backward", 0, ls_time() - t0);
}

void __real_op_layernorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void __wrap_op_layernorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void __wrap_op_layernorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int N, int D, float eps) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_layernorm_fwd_stats(y, mean, rstd, x, gamma, beta, N, D, eps);
    prof_depth--;
    if (!prof_depth) prof_add("op_layernorm_fwd_stats", 0, ls_time() - t0);
}

void __real_op_linear(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
void __wrap_op_linear(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
void __wrap_op_linear(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_linear(y, x, w, b, M, K, N);
    prof_depth--;
    if (!prof_depth) prof_add("op_linear", prof_is_lora(w), ls_time() - t0);
}

void __real_op_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int K, int N);
void __wrap_op_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int K, int N);
void __wrap_op_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int K, int N) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_linear_backward(dx, dw, db, dy, x, w, M, K, N);
    prof_depth--;
    if (!prof_depth) prof_add("op_linear_backward", prof_is_lora(w), ls_time() - t0);
}

void __real_op_nchw_to_ntc(float *y, const float *x, int B, int C, int T);
void __wrap_op_nchw_to_ntc(float *y, const float *x, int B, int C, int T);
void __wrap_op_nchw_to_ntc(float *y, const float *x, int B, int C, int T) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_nchw_to_ntc(y, x, B, C, T);
    prof_depth--;
    if (!prof_depth) prof_add("op_nchw_to_ntc", 0, ls_time() - t0);
}

void __real_op_nchw_to_ntc_backward(float *dx, const float *dy, int B, int C, int T);
void __wrap_op_nchw_to_ntc_backward(float *dx, const float *dy, int B, int C, int T);
void __wrap_op_nchw_to_ntc_backward(float *dx, const float *dy, int B, int C, int T) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_nchw_to_ntc_backward(dx, dy, B, C, T);
    prof_depth--;
    if (!prof_depth) prof_add("op_nchw_to_ntc_backward", 0, ls_time() - t0);
}

void __real_op_ntc_to_nchw(float *y, const float *x, int B, int C, int T);
void __wrap_op_ntc_to_nchw(float *y, const float *x, int B, int C, int T);
void __wrap_op_ntc_to_nchw(float *y, const float *x, int B, int C, int T) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_ntc_to_nchw(y, x, B, C, T);
    prof_depth--;
    if (!prof_depth) prof_add("op_ntc_to_nchw", 0, ls_time() - t0);
}

void __real_op_ntc_to_nchw_backward(float *dx, const float *dy, int B, int C, int T);
void __wrap_op_ntc_to_nchw_backward(float *dx, const float *dy, int B, int C, int T);
void __wrap_op_ntc_to_nchw_backward(float *dx, const float *dy, int B, int C, int T) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_ntc_to_nchw_backward(dx, dy, B, C, T);
    prof_depth--;
    if (!prof_depth) prof_add("op_ntc_to_nchw_backward", 0, ls_time() - t0);
}

void __real_op_silu_backward(float *dx, const float *dy, const float *x, size_t n);
void __wrap_op_silu_backward(float *dx, const float *dy, const float *x, size_t n);
void __wrap_op_silu_backward(float *dx, const float *dy, const float *x, size_t n) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_silu_backward(dx, dy, x, n);
    prof_depth--;
    if (!prof_depth) prof_add("op_silu_backward", 0, ls_time() - t0);
}

void __real_op_silu_inplace(float *x, size_t n);
void __wrap_op_silu_inplace(float *x, size_t n);
void __wrap_op_silu_inplace(float *x, size_t n) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_silu_inplace(x, n);
    prof_depth--;
    if (!prof_depth) prof_add("op_silu_inplace", 0, ls_time() - t0);
}

void __real_op_timestep_embedding(float *emb, const float *t, int B, int dim, float shift);
void __wrap_op_timestep_embedding(float *emb, const float *t, int B, int dim, float shift);
void __wrap_op_timestep_embedding(float *emb, const float *t, int B, int dim, float shift) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_timestep_embedding(emb, t, B, dim, shift);
    prof_depth--;
    if (!prof_depth) prof_add("op_timestep_embedding", 0, ls_time() - t0);
}

void __real_op_upsample_nearest(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);
void __wrap_op_upsample_nearest(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);
void __wrap_op_upsample_nearest(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_upsample_nearest(y, x, B, C, H, W, Ho, Wo);
    prof_depth--;
    if (!prof_depth) prof_add("op_upsample_nearest", 0, ls_time() - t0);
}

void __real_op_upsample_nearest_backward(float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo);
void __wrap_op_upsample_nearest_backward(float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo);
void __wrap_op_upsample_nearest_backward(float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo) {
    double t0 = ls_time();
    prof_depth++;
    __real_op_upsample_nearest_backward(dx, dy, B, C, H, W, Ho, Wo);
    prof_depth--;
    if (!prof_depth) prof_add("op_upsample_nearest_backward", 0, ls_time() - t0);
}

#define PROF_WRAPPED "op_add_channel_bias op_add_channel_bias_backward op_add_inplace op_attention op_attention_backward op_concat_channels op_concat_channels_backward op_conv2d op_conv2d_backward op_geglu op_geglu_backward op_gemm op_groupnorm op_groupnorm_backward op_groupnorm_fwd_stats op_layernorm op_layernorm_backward op_layernorm_fwd_stats op_linear op_linear_backward op_nchw_to_ntc op_nchw_to_ntc_backward op_ntc_to_nchw op_ntc_to_nchw_backward op_silu_backward op_silu_inplace op_timestep_embedding op_upsample_nearest op_upsample_nearest_backward"
#endif
