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
/* PROF_WRAP(op, lora, (params), (args)): __wrap_<op>, which the linker calls instead of <op> (-Wl,--wrap),
 * times __real_<op> (the library's) and adds it to <op>'s counter when it is the outermost op; lora: whether
 * the call counts as the adapter's (an expression of the parameters). */
#define PROF_WRAP(op, lora, params, args)                                \
    void __real_##op params;                                             \
    void __wrap_##op params;                                             \
    void __wrap_##op params {                                            \
        double t0 = ls_time();                                           \
        prof_depth++;                                                    \
        __real_##op args;                                                \
        prof_depth--;                                                    \
        if (!prof_depth) prof_add(#op, lora, ls_time() - t0);            \
    }

PROF_WRAP(op_add_channel_bias, 0, (float *y, const float *v, int B, int C, int HW), (y, v, B, C, HW))
PROF_WRAP(op_add_channel_bias_backward, 0, (float *dv, const float *dy, int B, int C, int HW), (dv, dy, B, C, HW))
PROF_WRAP(op_add_inplace, 0, (float *y, const float *x, size_t n), (y, x, n))
PROF_WRAP(op_attention, 0,
          (float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh,
           int causal),
          (out, q, k, v, B, Tq, Tk, NH, Dh, causal))
PROF_WRAP(op_attention_backward, 0,
          (float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, int B,
           int Tq, int Tk, int NH, int Dh, int causal),
          (dq, dk, dv, dout, q, k, v, B, Tq, Tk, NH, Dh, causal))
PROF_WRAP(op_concat_channels, 0, (float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW),
          (y, a, b, B, Ca, Cb, HW))
PROF_WRAP(op_concat_channels_backward, 0, (float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW),
          (da, db, dy, B, Ca, Cb, HW))
PROF_WRAP(op_conv2d, prof_is_lora(w),
          (float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout, int k,
           int stride, int pad0, int pad1),
          (y, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1))
PROF_WRAP(op_conv2d_backward, prof_is_lora(w),
          (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B, int Cin, int H,
           int W, int Cout, int k, int stride, int pad0, int pad1),
          (dx, dw, db, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, pad1))
PROF_WRAP(op_geglu, 0, (float *y, const float *x, int N, int D), (y, x, N, D))
PROF_WRAP(op_geglu_backward, 0, (float *dx, const float *dy, const float *x, int N, int D), (dx, dy, x, N, D))
PROF_WRAP(op_gemm, 1,
          (float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha,
           float beta),
          (C, A, B, M, N, K, transA, transB, alpha, beta))
PROF_WRAP(op_groupnorm, 0,
          (float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps,
           int silu),
          (y, x, gamma, beta, B, C, HW, G, eps, silu))
PROF_WRAP(op_groupnorm_backward, 0,
          (float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd,
           const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G, float eps, int silu),
          (dx, dgamma, dbeta, dy, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu))
PROF_WRAP(op_groupnorm_fwd_stats, 0,
          (float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int B, int C,
           int HW, int G, float eps, int silu),
          (y, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu))
PROF_WRAP(op_layernorm, 0, (float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps),
          (y, x, gamma, beta, N, D, eps))
PROF_WRAP(op_layernorm_backward, 0,
          (float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean, const float *rstd,
           const float *x, const float *gamma, int N, int D, float eps),
          (dx, dgamma, dbeta, dy, mean, rstd, x, gamma, N, D, eps))
PROF_WRAP(op_layernorm_fwd_stats, 0,
          (float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int N, int D,
           float eps),
          (y, mean, rstd, x, gamma, beta, N, D, eps))
PROF_WRAP(op_linear, prof_is_lora(w), (float *y, const float *x, const float *w, const float *b, int M, int K, int N),
          (y, x, w, b, M, K, N))
PROF_WRAP(op_linear_backward, prof_is_lora(w),
          (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int K, int N),
          (dx, dw, db, dy, x, w, M, K, N))
PROF_WRAP(op_nchw_to_ntc, 0, (float *y, const float *x, int B, int C, int T), (y, x, B, C, T))
PROF_WRAP(op_nchw_to_ntc_backward, 0, (float *dx, const float *dy, int B, int C, int T), (dx, dy, B, C, T))
PROF_WRAP(op_ntc_to_nchw, 0, (float *y, const float *x, int B, int C, int T), (y, x, B, C, T))
PROF_WRAP(op_ntc_to_nchw_backward, 0, (float *dx, const float *dy, int B, int C, int T), (dx, dy, B, C, T))
PROF_WRAP(op_silu_backward, 0, (float *dx, const float *dy, const float *x, size_t n), (dx, dy, x, n))
PROF_WRAP(op_silu_inplace, 0, (float *x, size_t n), (x, n))
PROF_WRAP(op_timestep_embedding, 0, (float *emb, const float *t, int B, int dim, float shift), (emb, t, B, dim, shift))
PROF_WRAP(op_upsample_nearest, 0, (float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo),
          (y, x, B, C, H, W, Ho, Wo))
PROF_WRAP(op_upsample_nearest_backward, 0, (float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo),
          (dx, dy, B, C, H, W, Ho, Wo))

#define PROF_WRAPPED "op_add_channel_bias op_add_channel_bias_backward op_add_inplace op_attention op_attention_backward op_concat_channels op_concat_channels_backward op_conv2d op_conv2d_backward op_geglu op_geglu_backward op_gemm op_groupnorm op_groupnorm_backward op_groupnorm_fwd_stats op_layernorm op_layernorm_backward op_layernorm_fwd_stats op_linear op_linear_backward op_nchw_to_ntc op_nchw_to_ntc_backward op_ntc_to_nchw op_ntc_to_nchw_backward op_silu_backward op_silu_inplace op_timestep_embedding op_upsample_nearest op_upsample_nearest_backward"
#endif
