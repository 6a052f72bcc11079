/* test_ops.c — every op of every backend in ops_backends() against its oracle, on seeded random inputs.
 *
 * Ops with a _ref twin (kernels/cpu/ref.c) are compared fast vs ref; the others against a few lines of
 * double-precision loop written here. A backend other than the CPU's also runs every op without a reference
 * (the backward passes, the forwards that save statistics) against the CPU backend, which test_grad.c checks
 * against finite differences; the CUDA backend (when compiled in and a GPU is present; otherwise "skip cuda:
 * no GPU") also runs its second code paths (im2col when cuDNN is the default, chunked attention) and real SD1.5
 * shapes, and prints a few timings. Every buffer comes from the backend's op_alloc, and check() waits for the
 * backend (op_sync) before it compares. Shapes cover odd sizes, stride 2, asymmetric padding (0,1), 1x1 and
 * 3x3 kernels, causal and cross attention (Tq != Tk), the chunked paths of conv and attention, and a few
 * real SD1.5 shapes. A handful of known values (checked against PyTorch) pin the semantics the refs could
 * share a mistake on. Pass criterion: max over i of |got-want| - (atol + rtol*|want|) <= 0.
 *
 * Usage: test_ops [fixtures_dir] [lorastyle_binary]  (both ignored). Exit 0 iff all checks pass.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: ls_time, LS_ASSERT
#include "ops.h"    // defines: the ops under test and their _ref twins
#ifdef LS_HAVE_CUDA
#include "cuda/cuda_ops.h" // defines: ops_cuda_present, ops_cuda_conv_cudnn, ops_cuda_attention_fused
#endif

/* ---- harness ---- */

static int n_pass, n_fail;
static uint64_t rng_state = 0x853c49e6748fea9bULL;

/* 64-bit LCG (Knuth MMIX constants); the top 24 bits give a uniform float in [0,1). */
static float rand_unit(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(rng_state >> 40) / 16777216.0f;
}

/* Every buffer an op sees comes from the backend's op_alloc (CUDA: managed memory, which the host and the
 * references read too) and goes back with op_free. */

/* n floats uniform in [lo, hi) (caller op_frees) */
static float *rand_buf(size_t n, float lo, float hi) {
    float *p = op_alloc(n * sizeof(float) + 1); /* +1: n may be 0 */
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rand_unit();
    return p;
}

/* n zero floats */
static float *zero_buf(size_t n) {
    float *p = op_alloc(n * sizeof(float));
    memset(p, 0, n * sizeof(float));
    return p;
}

/* a backend buffer holding a copy of v (n floats) */
static float *buf_of(const float *v, size_t n) {
    float *p = op_alloc(n * sizeof(float));
    memcpy(p, v, n * sizeof(float));
    return p;
}

/* Compare n values; prints one line; counts a pass or a failure. NaN anywhere fails. */
static void check(const char *op, const char *shape, const float *got, const float *want, size_t n,
                  double atol, double rtol) {
    op_sync(); /* the backend's ops may still be running */
    double max_abs = 0.0, worst = -INFINITY;
    size_t worst_i = 0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i])) nan = 1;
        double d = fabs((double)got[i] - want[i]);
        double excess = d - (atol + rtol * fabs(want[i]));
        if (d > max_abs) max_abs = d;
        if (excess > worst) worst = excess, worst_i = i;
    }
    int ok = !nan && (n == 0 || worst <= 0.0);
    printf("%s %-20s %-44s max_abs_diff %.3g\n", ok ? "ok  " : "FAIL", op, shape, max_abs);
    if (!ok && n > 0) {
        printf("     at [%zu]: got %.9g want %.9g%s\n", worst_i, got[worst_i], want[worst_i],
               nan ? " (NaN seen)" : "");
    }
    ok ? n_pass++ : n_fail++;
}

/* One known scalar. */
static void check_value(const char *what, double got, double want, double tol) {
    check(what, "known value", &(float){(float)got}, &(float){(float)want}, 1, tol, 0.0);
}

/* ---- ops with a reference ---- */

static void test_linear(int M, int K, int N, int with_bias) {
    float r = 1.0f / sqrtf((float)K); /* nn.Linear-like init keeps outputs O(1) */
    float *x = rand_buf((size_t)M * K, -1, 1), *w = rand_buf((size_t)N * K, -r, r);
    float *b = with_bias ? rand_buf(N, -1, 1) : NULL;
    float *y = rand_buf((size_t)M * N, 9, 9), *y_ref = rand_buf((size_t)M * N, 9, 9); /* junk: overwritten */
    op_linear(y, x, w, b, M, K, N);
    op_linear_ref(y_ref, x, w, b, M, K, N);
    char s[96];
    snprintf(s, sizeof s, "M=%d K=%d N=%d%s", M, K, N, with_bias ? " bias" : "");
    check("linear", s, y, y_ref, (size_t)M * N, 2e-5, 1e-4);
    op_free(x), op_free(w), op_free(b), op_free(y), op_free(y_ref);
}

static void test_conv2d(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1,
                        int with_bias) {
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    size_t ny = (size_t)B * Cout * Ho * Wo;
    float r = 1.0f / sqrtf((float)(Cin * k * k));
    float *x = rand_buf((size_t)B * Cin * H * W, -1, 1), *w = rand_buf((size_t)Cout * Cin * k * k, -r, r);
    float *b = with_bias ? rand_buf(Cout, -1, 1) : NULL;
    float *y = rand_buf(ny, 9, 9), *y_ref = rand_buf(ny, 9, 9);
    op_conv2d(y, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    op_conv2d_ref(y_ref, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    char s[96];
    snprintf(s, sizeof s, "%dx%dx%dx%d->%d k%d s%d p%d,%d%s", B, Cin, H, W, Cout, k, stride, pad0, pad1,
             with_bias ? " bias" : "");
    check("conv2d", s, y, y_ref, ny, 2e-5, 1e-4);
    op_free(x), op_free(w), op_free(b), op_free(y), op_free(y_ref);
}

/* offset shifts x away from zero mean (tests the variance's cancellation). */
static void test_groupnorm(int B, int C, int HW, int G, float eps, int silu, float offset) {
    size_t n = (size_t)B * C * HW;
    float *x = rand_buf(n, offset - 1, offset + 1), *gamma = rand_buf(C, 0.5f, 1.5f), *beta = rand_buf(C, -1, 1);
    float *y = rand_buf(n, 9, 9), *y_ref = rand_buf(n, 9, 9);
    op_groupnorm(y, x, gamma, beta, B, C, HW, G, eps, silu);
    op_groupnorm_ref(y_ref, x, gamma, beta, B, C, HW, G, eps, silu);
    char s[96];
    snprintf(s, sizeof s, "B=%d C=%d HW=%d G=%d eps=%g%s off=%g", B, C, HW, G, eps, silu ? " silu" : "",
             offset);
    check("groupnorm", s, y, y_ref, n, 1e-5, 1e-5);
    op_free(x), op_free(gamma), op_free(beta), op_free(y), op_free(y_ref);
}

static void test_layernorm(int N, int D, float eps, float offset) {
    size_t n = (size_t)N * D;
    float *x = rand_buf(n, offset - 1, offset + 1), *gamma = rand_buf(D, 0.5f, 1.5f), *beta = rand_buf(D, -1, 1);
    float *y = rand_buf(n, 9, 9), *y_ref = rand_buf(n, 9, 9);
    op_layernorm(y, x, gamma, beta, N, D, eps);
    op_layernorm_ref(y_ref, x, gamma, beta, N, D, eps);
    char s[96];
    snprintf(s, sizeof s, "N=%d D=%d eps=%g off=%g", N, D, eps, offset);
    check("layernorm", s, y, y_ref, n, 1e-5, 1e-5);
    op_free(x), op_free(gamma), op_free(beta), op_free(y), op_free(y_ref);
}

static void test_attention(int B, int Tq, int Tk, int NH, int Dh, int causal) {
    int C = NH * Dh;
    /* amplitude 3 on q and k makes scores O(1..10): peaked softmax rows, not near-uniform ones */
    float *q = rand_buf((size_t)B * Tq * C, -3, 3), *k = rand_buf((size_t)B * Tk * C, -3, 3);
    float *v = rand_buf((size_t)B * Tk * C, -1, 1);
    float *o = rand_buf((size_t)B * Tq * C, 9, 9), *o_ref = rand_buf((size_t)B * Tq * C, 9, 9);
    op_attention(o, q, k, v, B, Tq, Tk, NH, Dh, causal);
    op_attention_ref(o_ref, q, k, v, B, Tq, Tk, NH, Dh, causal);
    char s[96];
    snprintf(s, sizeof s, "B=%d Tq=%d Tk=%d NH=%d Dh=%d%s", B, Tq, Tk, NH, Dh, causal ? " causal" : "");
    check("attention", s, o, o_ref, (size_t)B * Tq * C, 2e-5, 1e-4);
    op_free(q), op_free(k), op_free(v), op_free(o), op_free(o_ref);
}

static void test_geglu(int N, int D) {
    float *x = rand_buf((size_t)N * 2 * D, -4, 4), *y = rand_buf((size_t)N * D, 9, 9);
    float *y_ref = rand_buf((size_t)N * D, 9, 9);
    op_geglu(y, x, N, D);
    op_geglu_ref(y_ref, x, N, D);
    char s[96];
    snprintf(s, sizeof s, "N=%d D=%d", N, D);
    check("geglu", s, y, y_ref, (size_t)N * D, 1e-6, 1e-5);
    op_free(x), op_free(y), op_free(y_ref);
}

static void test_upsample(int B, int C, int H, int W, int Ho, int Wo) {
    float *x = rand_buf((size_t)B * C * H * W, -1, 1);
    float *y = rand_buf((size_t)B * C * Ho * Wo, 9, 9), *y_ref = rand_buf((size_t)B * C * Ho * Wo, 9, 9);
    op_upsample_nearest(y, x, B, C, H, W, Ho, Wo);
    op_upsample_nearest_ref(y_ref, x, B, C, H, W, Ho, Wo);
    char s[96];
    snprintf(s, sizeof s, "%dx%dx%dx%d->%dx%d", B, C, H, W, Ho, Wo);
    check("upsample_nearest", s, y, y_ref, (size_t)B * C * Ho * Wo, 0, 0);
    op_free(x), op_free(y), op_free(y_ref);
}

/* ---- ops checked against a local loop ---- */

static double silu_d(double x) { return x / (1.0 + exp(-x)); }
static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double quick_gelu_d(double x) { return x / (1.0 + exp(-1.702 * x)); }

static void test_activation(const char *name, void (*op)(float *, size_t), double (*f)(double), size_t n) {
    float *x = rand_buf(n, -8, 8), *want = op_alloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) want[i] = (float)f(x[i]);
    op(x, n);
    char s[32];
    snprintf(s, sizeof s, "n=%zu", n);
    check(name, s, x, want, n, 1e-6, 1e-5);
    op_free(x), op_free(want);
}

static void test_adds(int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    float *y = rand_buf(n, -1, 1), *x = rand_buf(n, -1, 1), *v = rand_buf((size_t)B * C, -1, 1);
    float *want = op_alloc(n * sizeof(float));
    char s[64];
    snprintf(s, sizeof s, "B=%d C=%d HW=%d", B, C, HW);
    for (size_t i = 0; i < n; i++) want[i] = y[i] + x[i];
    op_add_inplace(y, x, n);
    check("add_inplace", s, y, want, n, 0, 0);
    for (size_t i = 0; i < n; i++) want[i] = y[i] + v[i / HW]; /* (b,c) index of element i is i / HW */
    op_add_channel_bias(y, v, B, C, HW);
    check("add_channel_bias", s, y, want, n, 0, 0);
    op_free(y), op_free(x), op_free(v), op_free(want);
}

static void test_layout(int B, int Ca, int Cb, int T) {
    int C = Ca + Cb;
    float *a = rand_buf((size_t)B * Ca * T, -1, 1), *b = rand_buf((size_t)B * Cb * T, -1, 1);
    float *y = rand_buf((size_t)B * C * T, 9, 9), *want = op_alloc((size_t)B * C * T * sizeof(float));
    float *back = rand_buf((size_t)B * C * T, 9, 9);
    char s[64];
    snprintf(s, sizeof s, "B=%d Ca=%d Cb=%d T=%d", B, Ca, Cb, T);
    for (int bi = 0; bi < B; bi++) {
        for (int c = 0; c < C; c++) {
            for (int t = 0; t < T; t++) {
                want[((size_t)bi * C + c) * T + t] = c < Ca ? a[((size_t)bi * Ca + c) * T + t]
                                                            : b[((size_t)bi * Cb + c - Ca) * T + t];
            }
        }
    }
    op_concat_channels(y, a, b, B, Ca, Cb, T);
    check("concat_channels", s, y, want, (size_t)B * C * T, 0, 0);
    /* y is (B,C,T); want becomes its (B,T,C) transpose */
    for (int bi = 0; bi < B; bi++) {
        for (int c = 0; c < C; c++) {
            for (int t = 0; t < T; t++) want[((size_t)bi * T + t) * C + c] = y[((size_t)bi * C + c) * T + t];
        }
    }
    snprintf(s, sizeof s, "B=%d C=%d T=%d", B, C, T);
    op_nchw_to_ntc(back, y, B, C, T);
    check("nchw_to_ntc", s, back, want, (size_t)B * C * T, 0, 0);
    op_ntc_to_nchw(want, back, B, C, T); /* round trip must give y back */
    check("ntc_to_nchw", s, want, y, (size_t)B * C * T, 0, 0);
    op_free(a), op_free(b), op_free(y), op_free(want), op_free(back);
}

/* Against (1) the same float operation order written out here (tight) and (2) the exact double formula
 * (loose: arguments reach ~1000 rad, so one float ulp of f_k moves the phase by ~1e-4). */
static void test_timestep(int B, int dim, float shift) {
    int half = dim / 2;
    float *t = rand_buf(B, 0, 1000), *emb = rand_buf((size_t)B * dim, 9, 9);
    float *want = op_alloc((size_t)B * dim * sizeof(float)), *exact = op_alloc((size_t)B * dim * sizeof(float));
    t[0] = 999.0f;
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < half; k++) {
            float e = (float)(-log(10000.0)) * (float)k;
            e = e / ((float)half - shift);
            double arg = (double)(t[b] * expf(e));
            want[(size_t)b * dim + k] = (float)cos(arg), want[(size_t)b * dim + half + k] = (float)sin(arg);
            double arg_d = t[b] * exp(-log(10000.0) * k / (half - shift));
            exact[(size_t)b * dim + k] = (float)cos(arg_d), exact[(size_t)b * dim + half + k] = (float)sin(arg_d);
        }
    }
    op_timestep_embedding(emb, t, B, dim, shift);
    char s[64];
    snprintf(s, sizeof s, "B=%d dim=%d shift=%g", B, dim, shift);
    check("timestep_emb", s, emb, want, (size_t)B * dim, 1e-6, 0);
    check("timestep_emb~exact", s, emb, exact, (size_t)B * dim, 5e-4, 0);
    op_free(t), op_free(emb), op_free(want), op_free(exact);
}

/* The conv and attention shapes (run again by the CUDA backend through its other code paths). */
static void test_conv_set(void) {
    test_conv2d(1, 3, 7, 7, 5, 3, 1, 1, 1, 1);
    test_conv2d(2, 4, 9, 7, 6, 3, 2, 1, 1, 1);   /* stride 2, odd non-square */
    test_conv2d(1, 5, 8, 8, 3, 3, 2, 0, 1, 1);   /* VAE encoder downsample padding */
    test_conv2d(2, 3, 7, 9, 4, 3, 2, 0, 1, 0);   /* same, odd sizes, no bias */
    test_conv2d(2, 8, 5, 6, 4, 1, 1, 0, 0, 1);   /* 1x1: direct GEMM path */
    test_conv2d(1, 3, 6, 7, 2, 1, 2, 0, 0, 0);   /* 1x1 strided: im2col path */
    test_conv2d(1, 2, 5, 5, 2, 5, 1, 2, 2, 1);   /* 5x5 */
    test_conv2d(1, 2, 4, 4, 3, 3, 1, 2, 2, 1);   /* pad > k/2: border rows all padding */
    test_conv2d(1, 4, 16, 16, 320, 3, 1, 1, 1, 1); /* conv_in at a 128x128 image */
    test_conv2d(1, 320, 16, 16, 320, 3, 1, 1, 1, 1);
    test_conv2d(1, 64, 128, 512, 4, 3, 1, 1, 1, 1); /* col = 1.2 MB/row > 64 MiB: 3 bands, last partial */

}

static void test_attention_set(void) {
    test_attention(1, 1, 1, 1, 1, 0);
    test_attention(1, 3, 4, 2, 5, 0);       /* small cross */
    test_attention(2, 5, 5, 3, 4, 1);       /* small causal */
    test_attention(1, 64, 77, 8, 40, 0);    /* cross-attention, Tq != Tk */
    test_attention(2, 77, 77, 12, 64, 1);   /* CLIP self-attention */
    test_attention(1, 1024, 1024, 8, 40, 0); /* SD1.5 down_blocks.0 self-attention at 256x256 */
    test_attention(1, 2048, 2048, 1, 8, 0); /* 4 query chunks */
    test_attention(1, 2048, 2048, 1, 8, 1); /* 4 query chunks, causal */
    test_attention(1, 37, 45, 2, 80, 0);    /* Dh 80 (SD1.5 down_blocks.1) */
    test_attention(2, 20, 20, 1, 128, 1);   /* Dh 128, causal */
    test_attention(1, 19, 33, 2, 160, 0);   /* Dh 160 (down_blocks.2) */

}

/* ---- sampling (op_sampler_step, op_scale, op_divide) against the plain loops: the same float operations in the
 * same order, so the same bits (tolerance 0) ---- */
static void test_sampling(size_t n) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = rand_buf(n, -3, 3), *mo = rand_buf(n, -2, 2), *noise = rand_buf(n, -1, 1);
    float *prev = rand_buf(n, -1, 1), *xr = buf_of(x, n), *prevr = buf_of(prev, n), *y = op_alloc(n * sizeof(float));
    /* scalars of a mid-schedule step (values as scheduler.c computes them at SD's 1000-step schedule) */
    SamplerStepArgs steps[] = {
        {.family = OP_STEP_DDIM, .sa = 0.7f, .sb = 0.714142842f, .sa_prev = 0.8f, .dir = 0.6f},
        {.family = OP_STEP_DDIM, .v = 1, .sa = 0.7f, .sb = 0.714142842f, .sa_prev = 0.8f, .dir = 0.6f},
        {.family = OP_STEP_EULER, .sigma = 2.5f, .dt = -0.4f},
        {.family = OP_STEP_EULER, .v = 1, .sigma = 2.5f, .cv = -0.928476691f, .s2p1 = 7.25f, .dt = -0.4f},
        {.family = OP_STEP_EULER, .sigma = 2.5f, .dt = -0.6f, .sigma_up = 0.9f}, /* ancestral: noise below */
        {.family = OP_STEP_DPM, .alpha = 0.8f, .sigma = 0.6f, .cx = 1.1f, .cd = 0.3f},
        {.family = OP_STEP_DPM, .alpha = 0.8f, .sigma = 0.6f, .cx = 1.1f, .cd = 0.3f, .cd1 = 0.2f, .inv_r0 = 1.7f,
         .second = 1},
        {.family = OP_STEP_DPM, .v = 1, .alpha = 0.8f, .sigma = 0.6f, .cx = 1.1f, .cd = 0.3f, .cd1 = 0.2f,
         .inv_r0 = 1.7f, .second = 1},
        {.family = OP_STEP_DPM, .alpha = 0.9f, .sigma = 0.4f, .final = 1},
    };
    static const char *names[] = {"ddim",  "ddim v",       "euler",           "euler v",          "euler a",
                                  "dpm++", "dpm++ second", "dpm++ v second", "dpm++ final"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const float *nz = steps[i].sigma_up != 0.0f ? noise : NULL;
        op_sampler_step(&steps[i], x, prev, mo, nz, n);
        op_sampler_step_ref(&steps[i], xr, prevr, mo, nz, n);
        char what[48];
        snprintf(what, sizeof what, "sampler_step %s", names[i]);
        check(what, shape, x, xr, n, 0, 0);
        if (steps[i].family == OP_STEP_DPM) check("sampler_step prev", shape, prev, prevr, n, 0, 0);
    }
    op_scale(y, x, 0.18215f, n);
    op_scale_ref(xr, x, 0.18215f, n);
    check("scale", shape, y, xr, n, 0, 0);
    op_divide(y, x, 0.18215f, n);
    op_divide_ref(xr, x, 0.18215f, n);
    check("divide", shape, y, xr, n, 0, 0);
    memcpy(xr, x, n * sizeof(float));
    op_scale(x, x, -1.5f, n); /* in place */
    op_scale_ref(xr, xr, -1.5f, n);
    check("scale in place", shape, x, xr, n, 0, 0);
    op_free(x), op_free(mo), op_free(noise), op_free(prev), op_free(xr), op_free(prevr), op_free(y);
}

/* ---- known values (from PyTorch 2.x float32 unless stated) ---- */

static void test_known_values(void) {
    /* the inputs are copied into backend buffers (buf_of); op_sync before the host reads an output */
    float *v = buf_of((float[4]){1.0f, -1.0f, 3.0f, 0.0f}, 4);
    op_gelu_inplace(v, 4);
    op_sync();
    check_value("gelu(1)", v[0], 0.8413447142, 1e-7);
    check_value("gelu(-1)", v[1], -0.1586552858, 1e-7);
    check_value("gelu(3)", v[2], 2.9959502220, 1e-6);
    check_value("gelu(0)", v[3], 0.0, 0);
    float *w = buf_of((float[2]){1.0f, -1.0f}, 2);
    op_quick_gelu_inplace(w, 2);
    op_sync();
    check_value("quick_gelu(1)", w[0], 0.8457957506, 1e-7);
    check_value("quick_gelu(-1)", w[1], -0.1542042345, 1e-7);
    float *u = buf_of((float[2]){1.0f, -2.0f}, 2);
    op_silu_inplace(u, 2);
    op_sync();
    check_value("silu(1)", u[0], 0.7310585976, 1e-7);
    check_value("silu(-2)", u[1], -0.2384058386, 1e-7);
    float *gg = buf_of((float[4]){2.0f, -3.0f, 1.0f, -1.0f}, 4), *gy = op_alloc(2 * sizeof(float));
    op_geglu(gy, gg, 1, 2); /* value (2,-3), gate (1,-1) */
    op_sync();
    check_value("geglu value*gelu(gate)", gy[0], 2.0 * 0.8413447142, 1e-6);
    check_value("geglu value*gelu(gate)", gy[1], -3.0 * -0.1586552858, 1e-6);
    op_free(v), op_free(w), op_free(u), op_free(gg), op_free(gy);

    /* timestep embedding: t = 0 gives [1..1, 0..0]; SD shapes against diffusers get_timestep_embedding.
     * Tolerance 1e-4: PyTorch's vectorised exp is not correctly rounded (glibc expf is), e.g. f_2 differs by
     * one ulp (0.891250908 vs 0.891250968), which at t = 999 moves the phase by 6e-5 rad. */
    float *t2 = buf_of((float[2]){0.0f, 999.0f}, 2), *emb = op_alloc(2 * 320 * sizeof(float));
    op_timestep_embedding(emb, t2, 2, 320, 0.0f);
    float ones[160], zeros[160];
    for (int i = 0; i < 160; i++) ones[i] = 1.0f, zeros[i] = 0.0f;
    check("timestep_emb t=0 cos", "dim=320", emb, ones, 160, 0, 0);
    check("timestep_emb t=0 sin", "dim=320", emb + 160, zeros, 160, 0, 0);
    static const int idx[9] = {0, 1, 2, 50, 159, 160, 161, 200, 319};
    static const float t999[9] = {0.9996498227f, 0.8026775122f, -0.2780621350f, 0.9320461154f, 0.9944063425f,
                                  -0.0264607519f, 0.5964133143f, -0.5899291039f, 0.1056220606f};
    for (int i = 0; i < 9; i++) check_value("timestep_emb t=999", emb[320 + idx[i]], t999[i], 1e-4);
    float *t_frac = buf_of((float[1]){978.6122f}, 1);
    static const float tfr[9] = {0.0060709869f, 0.9710506797f, 0.3867129087f, 0.0535017774f, 0.9946321249f,
                                 -0.9999815822f, 0.2388735414f, -0.4545272589f, 0.1034743190f};
    op_timestep_embedding(emb, t_frac, 1, 320, 0.0f);
    op_sync();
    for (int i = 0; i < 9; i++) check_value("timestep_emb t=978.6122", emb[idx[i]], tfr[i], 1e-4);
    static const float t500[8] = {-0.8838492632f, -0.3466525674f, 0.4737807214f, 0.9987502694f,
                                  -0.4677717984f, -0.9379935861f, 0.8806428313f, 0.0499791615f};
    float *t5 = buf_of((float[1]){500.0f}, 1);
    op_timestep_embedding(emb, t5, 1, 8, 1.0f);
    check("timestep_emb t=500", "dim=8 shift=1", emb, t500, 8, 2e-6, 0);
    op_free(t2), op_free(emb), op_free(t_frac), op_free(t5);

    /* nearest resize source indices, == F.interpolate(size=...): 3→5, 5→3 and 2→82 (float-scale quirk) */
    float *x5 = buf_of((float[5]){0, 1, 2, 3, 4}, 5), *y82 = op_alloc(82 * sizeof(float));
    float *y5 = op_alloc(5 * sizeof(float)), *y3 = op_alloc(3 * sizeof(float));
    float want5[5] = {0, 0, 1, 1, 2}, want3[3] = {0, 1, 3};
    op_upsample_nearest(y5, x5, 1, 1, 1, 3, 1, 5);
    check("upsample idx 3->5", "W 3->5", y5, want5, 5, 0, 0);
    op_upsample_nearest(y3, x5, 1, 1, 1, 5, 1, 3);
    check("upsample idx 5->3", "W 5->3", y3, want3, 3, 0, 0);
    op_upsample_nearest(y82, x5, 1, 1, 2, 1, 82, 1); /* along H this time */
    op_sync();
    check_value("upsample 2->82 [41]", y82[41], 0.0, 0); /* PyTorch: 0, exact floor(41*2/82) would be 1 */
    check_value("upsample 2->82 [42]", y82[42], 1.0, 0);
    op_free(x5), op_free(y82), op_free(y5), op_free(y3);

    /* linear: [1 2 3] · [[1 0 -1], [2 2 2]]ᵀ + [0.5, -1] = [-1.5, 11] */
    float *lx = buf_of((float[3]){1, 2, 3}, 3), *lw = buf_of((float[6]){1, 0, -1, 2, 2, 2}, 6);
    float *lb = buf_of((float[2]){0.5f, -1}, 2), *ly = op_alloc(2 * sizeof(float));
    op_linear(ly, lx, lw, lb, 1, 3, 2);
    op_sync();
    check_value("linear by hand", ly[0], -1.5, 0);
    check_value("linear by hand", ly[1], 11.0, 0);
    op_free(lx), op_free(lw), op_free(lb), op_free(ly);

    /* conv: 3x3 input 1..9, 2x2 ones kernel, no pad → window sums [12 16; 24 28].
     * VAE-style downsample (3x3 ones kernel, stride 2, pad 0 top/left, 1 bottom/right) on the 4x4 input
     * 1..16: windows start at rows/cols 0 and 2, row/col 4 is padding →
     * [1+2+3+5+6+7+9+10+11 = 54, 3+4+7+8+11+12 = 45; 9+10+11+13+14+15 = 72, 11+12+15+16 = 54] */
    float *cx = op_alloc(16 * sizeof(float)), *cx9 = buf_of((float[9]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9);
    float *cw = buf_of((float[9]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9), *cy = op_alloc(4 * sizeof(float));
    for (int i = 0; i < 16; i++) cx[i] = (float)(i + 1);
    float want_c[4] = {12, 16, 24, 28}, want_p[4] = {54, 45, 72, 54};
    op_conv2d(cy, cx9, cw, NULL, 1, 1, 3, 3, 1, 2, 1, 0, 0);
    check("conv2d by hand", "3x3 k2", cy, want_c, 4, 0, 0);
    LS_ASSERT(op_conv2d_out(4, 3, 2, 0, 1) == 2);
    op_conv2d(cy, cx, cw, NULL, 1, 1, 4, 4, 1, 3, 2, 0, 1);
    check("conv2d by hand", "4x4 k3 s2 p0,1", cy, want_p, 4, 0, 0);
    op_free(cx), op_free(cx9), op_free(cw), op_free(cy);

    /* groupnorm of [1 2 3 4] (one group, eps 0) = (x - 2.5)/sqrt(1.25); constant input → beta */
    float *gx = buf_of((float[4]){1, 2, 3, 4}, 4), *one = buf_of((float[1]){1}, 1), *zero = buf_of((float[1]){0}, 1);
    float *gyn = op_alloc(4 * sizeof(float));
    op_groupnorm(gyn, gx, one, zero, 1, 1, 4, 1, 0.0f, 0);
    op_sync();
    check_value("groupnorm by hand", gyn[0], -1.5 / sqrt(1.25), 1e-6);
    check_value("groupnorm by hand", gyn[3], 1.5 / sqrt(1.25), 1e-6);
    float *cst = buf_of((float[4]){7, 7, 7, 7}, 4), *ones4 = buf_of((float[4]){1, 1, 1, 1}, 4);
    float *b4 = buf_of((float[4]){0.25f, 0.25f, 0.25f, 0.25f}, 4);
    op_layernorm(gyn, cst, ones4, b4, 1, 4, 1e-5f);
    op_sync();
    check_value("layernorm const -> beta", gyn[2], 0.25, 0);
    op_free(gx), op_free(one), op_free(zero), op_free(gyn), op_free(cst), op_free(ones4), op_free(b4);

    /* attention with one key returns its value row; with identical keys, the mean of the values */
    float *aq = buf_of((float[2]){0.3f, -2.0f}, 2), *ak = buf_of((float[2]){1.0f, 5.0f}, 2);
    float *av = buf_of((float[2]){4.0f, -6.0f}, 2), *ao = op_alloc(2 * sizeof(float));
    op_attention(ao, aq, ak, av, 1, 1, 1, 2, 1, 0); /* NH=2, Dh=1 */
    op_sync();
    check_value("attention Tk=1 -> v", ao[0], 4.0, 0);
    check_value("attention Tk=1 -> v", ao[1], -6.0, 0);
    float *kq = buf_of((float[1]){1.0f}, 1), *kk = buf_of((float[3]){2.0f, 2.0f, 2.0f}, 3);
    float *kv = buf_of((float[3]){1.0f, 2.0f, 6.0f}, 3), *ko = op_alloc(sizeof(float));
    op_attention(ko, kq, kk, kv, 1, 1, 3, 1, 1, 0);
    op_sync();
    check_value("attention equal keys -> mean", ko[0], 3.0, 1e-6);
    /* causal: query 0 sees only key 0 */
    float *cq = buf_of((float[2]){0.0f, 0.0f}, 2), *ck = buf_of((float[2]){0.0f, 0.0f}, 2);
    float *cv = buf_of((float[2]){5.0f, 1.0f}, 2), *co = op_alloc(2 * sizeof(float));
    op_attention(co, cq, ck, cv, 1, 2, 2, 1, 1, 1);
    op_sync();
    check_value("attention causal row 0", co[0], 5.0, 0);
    check_value("attention causal row 1", co[1], 3.0, 1e-6);
    op_free(aq), op_free(ak), op_free(av), op_free(ao), op_free(kq), op_free(kk), op_free(kv), op_free(ko);
    op_free(cq), op_free(ck), op_free(cv), op_free(co);

    if (op_num_threads() < 1) n_fail++, printf("FAIL op_num_threads() = %d\n", op_num_threads());
}

/* ---- between layers (kernels/cpu/optim.c) against their plain references ---- */
static void test_between_layers(int B, int L, int D, int V, size_t n) {
    char shape[64];
    snprintf(shape, sizeof shape, "B=%d L=%d D=%d V=%d n=%zu", B, L, D, V, n);
    float *tok = rand_buf((size_t)V * D, -1, 1), *pos = rand_buf((size_t)L * D, -1, 1);
    float *y = rand_buf((size_t)B * L * D, 0, 1), *yr = rand_buf((size_t)B * L * D, 0, 1);
    int *ids = op_alloc((size_t)B * L * sizeof(int));
    for (int i = 0; i < B * L; i++) ids[i] = (int)(rand_unit() * V) % V;
    op_embedding(y, tok, pos, ids, B, L, D);
    op_embedding_ref(yr, tok, pos, ids, B, L, D);
    check("embedding", shape, y, yr, (size_t)B * L * D, 0, 0);

    float *e = rand_buf(n, -2, 2), *c = rand_buf(n, -2, 2), *er = op_alloc(n * sizeof(float) + 1);
    memcpy(er, e, n * sizeof(float));
    op_cfg_combine(e, c, 7.5f, n);
    op_cfg_combine_ref(er, c, 7.5f, n);
    check("cfg_combine", shape, e, er, n, 0, 0);
    op_axpy(e, -0.37f, c, n);
    op_axpy_ref(er, -0.37f, c, n);
    check("axpy", shape, e, er, n, 0, 0);

    float *d = op_alloc(n * sizeof(float) + 1), *dr = op_alloc(n * sizeof(float) + 1);
    double l = op_mse_loss(d, e, c, NULL, 1, n), lr = op_mse_loss_ref(dr, e, c, NULL, 1, n);
    check("mse_loss grad", shape, d, dr, n, 0, 0);
    check_value("mse_loss", l, lr, 1e-12 * lr);
    /* weighted (one weight per position, shared by the channels): against the backend, against the plain sum,
     * and its gradient against central differences of the loss at a few elements */
    enum { HW = 7 };
    float *w = rand_buf(HW, 0.5f, 3.0f);
    l = op_mse_loss(d, e, c, w, HW, n), lr = op_mse_loss_ref(dr, e, c, w, HW, n);
    check("mse_loss weighted grad", shape, d, dr, n, 0, 0);
    check_value("mse_loss weighted", l, lr, 1e-12 * lr);
    double plain = 0.0;
    for (size_t i = 0; i < n; i++) plain += (double)w[i % HW] * ((double)e[i] - c[i]) * ((double)e[i] - c[i]);
    check_value("mse_loss weighted = sum w·d²/n", lr, plain / (double)n, 1e-12 * lr);
    for (size_t i = 0; i < n; i += 1 + n / 5) {
        float keep = e[i], hstep = 1e-2f;
        e[i] = keep + hstep;
        double lp = op_mse_loss_ref(NULL, e, c, w, HW, n);
        e[i] = keep - hstep;
        double lm = op_mse_loss_ref(NULL, e, c, w, HW, n);
        e[i] = keep;
        check_value("mse_loss weighted finite difference", dr[i], (lp - lm) / (2.0 * hstep), 1e-4 * fabs(dr[i]) + 1e-7);
    }
    op_free(w);
    check_value("sum_squares", op_sum_squares(e, n), op_sum_squares_ref(e, n), 1e-12 * op_sum_squares_ref(e, n));

    /* AdamW: three steps from zero moments, with weight decay and a clipping scale */
    float *p = rand_buf(n, -1, 1), *m = zero_buf(n + 1), *v = zero_buf(n + 1);
    float *pr = op_alloc(n * sizeof(float) + 1), *mr = zero_buf(n + 1), *vr = zero_buf(n + 1);
    memcpy(pr, p, n * sizeof(float));
    for (int t = 1; t <= 3; t++) {
        AdamwArgs a = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .gscale = 0.5,
                       .bc1 = 1.0 - pow(0.9, t), .bc2 = 1.0 - pow(0.999, t)};
        op_adamw(p, c, m, v, n, &a);
        op_adamw_ref(pr, c, mr, vr, n, &a);
    }
    check("adamw p", shape, p, pr, n, 1e-7, 1e-6);
    check("adamw m", shape, m, mr, n, 0, 0);
    check("adamw v", shape, v, vr, n, 0, 0);
    /* one step from zero moments moves each parameter by lr·sign(g) (|g| ≫ eps), after the decay */
    float *p1 = buf_of((float[1]){0.5f}, 1), *m1 = zero_buf(1), *v1 = zero_buf(1), *g1 = buf_of((float[1]){-3.0f}, 1);
    AdamwArgs a1 = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0, .gscale = 1.0,
                    .bc1 = 0.1, .bc2 = 1.0 - 0.999};
    op_adamw(p1, g1, m1, v1, 1, &a1);
    op_sync();
    check_value("adamw first step", p1[0], 0.6, 1e-6);
    op_free(p1), op_free(m1), op_free(v1), op_free(g1);
    op_free(tok), op_free(pos), op_free(y), op_free(yr), op_free(ids), op_free(e), op_free(c), op_free(er);
    op_free(d), op_free(dr);
    op_free(p), op_free(m), op_free(v), op_free(pr), op_free(mr), op_free(vr);
}

/* ---- other backends: the ops without a reference against the CPU backend (whose backward passes test_grad.c
 * checks against finite differences and naive loops). Parameter gradients start from the same random values in
 * both (they accumulate); activation gradients start as junk (they are overwritten). ---- */

/* max |got - want| <= tol · max |want|: for gradients, sums whose terms cancel, where an elementwise relative
 * bound means nothing near zero. tol is per op below: fp32 with a different summation order (cuBLAS's GEMM
 * blocking, block and warp trees instead of the CPU's lanes) — 1e-5 for plain sums and GEMMs of a few thousand
 * terms, 1e-4 where a softmax or a normalisation sits between the sums. */
static void check_scaled(const char *op, const char *shape, const float *got, const float *want, size_t n,
                         double tol) {
    op_sync();
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)want[i]));
    check(op, shape, got, want, n, tol * (mx > 0.0 ? mx : 1.0), 0.0);
}

static const OpTable *const cpu = &op_table_cpu;

static void cmp_linear_backward(int M, int K, int N) {
    char s[64];
    snprintf(s, sizeof s, "M=%d K=%d N=%d", M, K, N);
    float *x = rand_buf((size_t)M * K, -1, 1), *w = rand_buf((size_t)N * K, -1, 1);
    float *dy = rand_buf((size_t)M * N, -1, 1), *dx = rand_buf((size_t)M * K, 9, 9);
    float *dxc = rand_buf((size_t)M * K, 9, 9), *dx2 = rand_buf((size_t)M * K, 9, 9);
    float *dw = rand_buf((size_t)N * K, -1, 1), *dwc = buf_of(dw, (size_t)N * K);
    float *db = rand_buf(N, -1, 1), *dbc = buf_of(db, N);
    op_linear_backward(dx, dw, db, dy, x, w, M, K, N);
    cpu->linear_backward(dxc, dwc, dbc, dy, x, w, M, K, N);
    check_scaled("linear_backward dx", s, dx, dxc, (size_t)M * K, 1e-5);
    check_scaled("linear_backward dw", s, dw, dwc, (size_t)N * K, 1e-5);
    check_scaled("linear_backward db", s, db, dbc, N, 1e-6);
    op_linear_backward(dx2, NULL, NULL, dy, NULL, w, M, K, N); /* frozen layer: no x needed */
    check("linear_backward dx only", s, dx2, dx, (size_t)M * K, 0, 0);
    op_free(x), op_free(w), op_free(dy), op_free(dx), op_free(dxc), op_free(dx2), op_free(dw), op_free(dwc);
    op_free(db), op_free(dbc);
}

static void cmp_conv2d(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1) {
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    size_t nx = (size_t)B * Cin * H * W, ny = (size_t)B * Cout * Ho * Wo, nw = (size_t)Cout * Cin * k * k;
    char s[96];
    snprintf(s, sizeof s, "%dx%dx%dx%d->%d k%d s%d p%d,%d", B, Cin, H, W, Cout, k, stride, pad0, pad1);
    float r = 1.0f / sqrtf((float)(Cin * k * k));
    float *x = rand_buf(nx, -1, 1), *w = rand_buf(nw, -r, r), *b = rand_buf(Cout, -1, 1), *dy = rand_buf(ny, -1, 1);
    float *y = rand_buf(ny, 9, 9), *yc = rand_buf(ny, 9, 9);
    op_conv2d(y, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    cpu->conv2d(yc, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    check("conv2d vs cpu", s, y, yc, ny, 2e-5, 1e-4);
    float *dx = rand_buf(nx, 9, 9), *dxc = rand_buf(nx, 9, 9), *dx2 = rand_buf(nx, 9, 9);
    float *dw = rand_buf(nw, -1, 1), *dwc = buf_of(dw, nw), *db = rand_buf(Cout, -1, 1), *dbc = buf_of(db, Cout);
    op_conv2d_backward(dx, dw, db, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    cpu->conv2d_backward(dxc, dwc, dbc, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    check_scaled("conv2d_backward dx", s, dx, dxc, nx, 1e-5);
    check_scaled("conv2d_backward dw", s, dw, dwc, nw, 1e-5);
    check_scaled("conv2d_backward db", s, db, dbc, Cout, 1e-6);
    op_conv2d_backward(dx2, NULL, NULL, dy, NULL, w, B, Cin, H, W, Cout, k, stride, pad0, pad1); /* frozen */
    check_scaled("conv2d_backward dx only", s, dx2, dxc, nx, 1e-5);
    op_free(x), op_free(w), op_free(b), op_free(dy), op_free(y), op_free(yc), op_free(dx), op_free(dxc);
    op_free(dx2), op_free(dw), op_free(dwc), op_free(db), op_free(dbc);
}

static void cmp_groupnorm(int B, int C, int HW, int G, int silu, float offset) {
    size_t n = (size_t)B * C * HW, ns = (size_t)B * G;
    char s[96];
    snprintf(s, sizeof s, "B=%d C=%d HW=%d G=%d%s off=%g", B, C, HW, G, silu ? " silu" : "", offset);
    float *x = rand_buf(n, offset - 1, offset + 1), *gamma = rand_buf(C, 0.5f, 1.5f), *beta = rand_buf(C, -1, 1);
    float *dy = rand_buf(n, -1, 1), *y = rand_buf(n, 9, 9), *yr = rand_buf(n, 9, 9);
    float *mean = rand_buf(ns, 9, 9), *rstd = rand_buf(ns, 9, 9);
    float *meanc = rand_buf(ns, 9, 9), *rstdc = rand_buf(ns, 9, 9);
    op_groupnorm_fwd_stats(y, mean, rstd, x, gamma, beta, B, C, HW, G, 1e-5f, silu);
    op_groupnorm_ref(yr, x, gamma, beta, B, C, HW, G, 1e-5f, silu);
    check("groupnorm_fwd_stats y", s, y, yr, n, 1e-5, 1e-5);
    cpu->groupnorm_fwd_stats(yr, meanc, rstdc, x, gamma, beta, B, C, HW, G, 1e-5f, silu);
    check("groupnorm_fwd_stats mean", s, mean, meanc, ns, 1e-6, 1e-6);
    check("groupnorm_fwd_stats rstd", s, rstd, rstdc, ns, 0, 1e-6);
    float *dx = rand_buf(n, 9, 9), *dxc = rand_buf(n, 9, 9), *dx2 = rand_buf(n, 9, 9);
    float *dg = rand_buf(C, -1, 1), *dgc = buf_of(dg, C), *dbt = rand_buf(C, -1, 1), *dbtc = buf_of(dbt, C);
    op_groupnorm_backward(dx, dg, dbt, dy, mean, rstd, x, gamma, beta, B, C, HW, G, 1e-5f, silu);
    cpu->groupnorm_backward(dxc, dgc, dbtc, dy, meanc, rstdc, x, gamma, beta, B, C, HW, G, 1e-5f, silu);
    check_scaled("groupnorm_backward dx", s, dx, dxc, n, 1e-4);
    check_scaled("groupnorm_backward dgamma", s, dg, dgc, C, 1e-5);
    check_scaled("groupnorm_backward dbeta", s, dbt, dbtc, C, 1e-5);
    op_groupnorm_backward(dx2, NULL, NULL, dy, NULL, NULL, x, gamma, beta, B, C, HW, G, 1e-5f, silu); /* recomputed */
    check_scaled("groupnorm_backward dx, no stats", s, dx2, dxc, n, 1e-4);
    op_free(x), op_free(gamma), op_free(beta), op_free(dy), op_free(y), op_free(yr), op_free(mean), op_free(rstd);
    op_free(meanc), op_free(rstdc), op_free(dx), op_free(dxc), op_free(dx2), op_free(dg), op_free(dgc), op_free(dbt);
    op_free(dbtc);
}

static void cmp_layernorm(int N, int D, float offset) {
    size_t n = (size_t)N * D;
    char s[64];
    snprintf(s, sizeof s, "N=%d D=%d off=%g", N, D, offset);
    float *x = rand_buf(n, offset - 1, offset + 1), *gamma = rand_buf(D, 0.5f, 1.5f), *beta = rand_buf(D, -1, 1);
    float *dy = rand_buf(n, -1, 1), *y = rand_buf(n, 9, 9), *yr = rand_buf(n, 9, 9);
    float *mean = rand_buf(N, 9, 9), *rstd = rand_buf(N, 9, 9), *meanc = rand_buf(N, 9, 9), *rstdc = rand_buf(N, 9, 9);
    op_layernorm_fwd_stats(y, mean, rstd, x, gamma, beta, N, D, 1e-5f);
    op_layernorm_ref(yr, x, gamma, beta, N, D, 1e-5f);
    check("layernorm_fwd_stats y", s, y, yr, n, 1e-5, 1e-5);
    cpu->layernorm_fwd_stats(yr, meanc, rstdc, x, gamma, beta, N, D, 1e-5f);
    check("layernorm_fwd_stats mean", s, mean, meanc, N, 1e-6, 1e-6);
    check("layernorm_fwd_stats rstd", s, rstd, rstdc, N, 0, 1e-6);
    float *dx = rand_buf(n, 9, 9), *dxc = rand_buf(n, 9, 9), *dx2 = rand_buf(n, 9, 9);
    float *dg = rand_buf(D, -1, 1), *dgc = buf_of(dg, D), *dbt = rand_buf(D, -1, 1), *dbtc = buf_of(dbt, D);
    op_layernorm_backward(dx, dg, dbt, dy, mean, rstd, x, gamma, N, D, 1e-5f);
    cpu->layernorm_backward(dxc, dgc, dbtc, dy, meanc, rstdc, x, gamma, N, D, 1e-5f);
    check_scaled("layernorm_backward dx", s, dx, dxc, n, 1e-4);
    check_scaled("layernorm_backward dgamma", s, dg, dgc, D, 1e-5);
    check_scaled("layernorm_backward dbeta", s, dbt, dbtc, D, 1e-5);
    op_layernorm_backward(dx2, NULL, NULL, dy, NULL, NULL, x, gamma, N, D, 1e-5f);
    check_scaled("layernorm_backward dx, no stats", s, dx2, dxc, n, 1e-4);
    op_free(x), op_free(gamma), op_free(beta), op_free(dy), op_free(y), op_free(yr), op_free(mean), op_free(rstd);
    op_free(meanc), op_free(rstdc), op_free(dx), op_free(dxc), op_free(dx2), op_free(dg), op_free(dgc), op_free(dbt);
    op_free(dbtc);
}

static void cmp_attention_backward(int B, int Tq, int Tk, int NH, int Dh, int causal) {
    int C = NH * Dh;
    size_t nq = (size_t)B * Tq * C, nk = (size_t)B * Tk * C;
    char s[96];
    snprintf(s, sizeof s, "B=%d Tq=%d Tk=%d NH=%d Dh=%d%s", B, Tq, Tk, NH, Dh, causal ? " causal" : "");
    float *q = rand_buf(nq, -3, 3), *k = rand_buf(nk, -3, 3), *v = rand_buf(nk, -1, 1), *dout = rand_buf(nq, -1, 1);
    float *dq = rand_buf(nq, 9, 9), *dk = rand_buf(nk, 9, 9), *dv = rand_buf(nk, 9, 9);
    float *dqc = rand_buf(nq, 9, 9), *dkc = rand_buf(nk, 9, 9), *dvc = rand_buf(nk, 9, 9), *dq2 = rand_buf(nq, 9, 9);
    op_attention_backward(dq, dk, dv, dout, q, k, v, B, Tq, Tk, NH, Dh, causal);
    cpu->attention_backward(dqc, dkc, dvc, dout, q, k, v, B, Tq, Tk, NH, Dh, causal);
    check_scaled("attention_backward dq", s, dq, dqc, nq, 1e-4);
    check_scaled("attention_backward dk", s, dk, dkc, nk, 1e-4);
    check_scaled("attention_backward dv", s, dv, dvc, nk, 1e-5);
    op_attention_backward(dq2, NULL, NULL, dout, q, k, v, B, Tq, Tk, NH, Dh, causal);
    check("attention_backward dq only", s, dq2, dq, nq, 0, 0);
    op_free(q), op_free(k), op_free(v), op_free(dout), op_free(dq), op_free(dk), op_free(dv), op_free(dqc);
    op_free(dkc), op_free(dvc), op_free(dq2);
}

/* activations, GEGLU, the channel-bias gradient and the layout backward passes, elementwise */
static void cmp_elementwise_backward(int B, int C, int H, int W) {
    size_t n = (size_t)B * C * H * W;
    char s[64];
    snprintf(s, sizeof s, "B=%d C=%d H=%d W=%d", B, C, H, W);
    float *x = rand_buf(n, -6, 6), *dy = rand_buf(n, -1, 1), *dx = rand_buf(2 * n, 9, 9), *dxc = rand_buf(2 * n, 9, 9);
    op_silu_backward(dx, dy, x, n);
    cpu->silu_backward(dxc, dy, x, n);
    check("silu_backward", s, dx, dxc, n, 1e-6, 1e-5);
    op_gelu_backward(dx, dy, x, n);
    cpu->gelu_backward(dxc, dy, x, n);
    check("gelu_backward", s, dx, dxc, n, 1e-6, 1e-5);
    op_quick_gelu_backward(dx, dy, x, n);
    cpu->quick_gelu_backward(dxc, dy, x, n);
    check("quick_gelu_backward", s, dx, dxc, n, 1e-6, 1e-5);
    memcpy(dx, dy, n * sizeof(float));
    op_silu_backward(dx, dx, x, n); /* in place */
    cpu->silu_backward(dxc, dy, x, n);
    check("silu_backward in place", s, dx, dxc, n, 1e-6, 1e-5);
    float *xg = rand_buf(2 * n, -4, 4); /* GEGLU: N = B·C·H rows of D = W */
    op_geglu_backward(dx, dy, xg, B * C * H, W);
    cpu->geglu_backward(dxc, dy, xg, B * C * H, W);
    check("geglu_backward", s, dx, dxc, 2 * n, 1e-6, 1e-5);
    float *dv = rand_buf((size_t)B * C, -1, 1), *dvc = buf_of(dv, (size_t)B * C);
    op_add_channel_bias_backward(dv, dy, B, C, H * W);
    cpu->add_channel_bias_backward(dvc, dy, B, C, H * W);
    check_scaled("add_channel_bias_backward", s, dv, dvc, (size_t)B * C, 1e-6);
    /* layout: dy of the ×2 upsample is (B,C,2H,2W); concat splits C into C/2 + rest; transposes with T = H·W */
    float *dyu = rand_buf(4 * n, -1, 1);
    op_upsample_nearest_backward(dx, dyu, B, C, H, W, 2 * H, 2 * W);
    cpu->upsample_nearest_backward(dxc, dyu, B, C, H, W, 2 * H, 2 * W);
    check("upsample_nearest_backward x2", s, dx, dxc, n, 0, 0);
    size_t no = (size_t)B * C * (2 * H + 1) * (W + 3);
    float *dxo = rand_buf(no, 9, 9), *dxoc = rand_buf(no, 9, 9);
    op_upsample_nearest_backward(dxo, dy, B, C, 2 * H + 1, W + 3, H, W); /* downsampling sizes: some get nothing */
    cpu->upsample_nearest_backward(dxoc, dy, B, C, 2 * H + 1, W + 3, H, W);
    check("upsample_nearest_backward odd", s, dxo, dxoc, no, 0, 0);
    op_free(dxo), op_free(dxoc);
    int Ca = C / 2, Cb = C - Ca;
    op_concat_channels_backward(dx, dx + n, dy, B, Ca, Cb, H * W); /* da (B,Ca,HW) at dx, db (B,Cb,HW) at dx + n */
    cpu->concat_channels_backward(dxc, dxc + n, dy, B, Ca, Cb, H * W);
    check("concat_channels_backward da", s, dx, dxc, (size_t)B * Ca * H * W, 0, 0);
    check("concat_channels_backward db", s, dx + n, dxc + n, (size_t)B * Cb * H * W, 0, 0);
    op_nchw_to_ntc_backward(dx, dy, B, C, H * W);
    cpu->nchw_to_ntc_backward(dxc, dy, B, C, H * W);
    check("nchw_to_ntc_backward", s, dx, dxc, n, 0, 0);
    op_ntc_to_nchw_backward(dx, dy, B, C, H * W);
    cpu->ntc_to_nchw_backward(dxc, dy, B, C, H * W);
    check("ntc_to_nchw_backward", s, dx, dxc, n, 0, 0);
    op_free(x), op_free(dy), op_free(dx), op_free(dxc), op_free(xg), op_free(dv), op_free(dvc), op_free(dyu);
}

/* GEMM with every transpose combination and beta != 0 against the reference */
static void test_gemm(int M, int N, int K) {
    char s[64];
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        float *A = rand_buf((size_t)M * K, -1, 1), *Bm = rand_buf((size_t)K * N, -1, 1);
        float *Cm = rand_buf((size_t)M * N, -1, 1), *Cr = buf_of(Cm, (size_t)M * N);
        op_gemm(Cm, A, Bm, M, N, K, ta, tb, 0.5f, 0.25f);
        op_gemm_ref(Cr, A, Bm, M, N, K, ta, tb, 0.5f, 0.25f);
        snprintf(s, sizeof s, "M=%d N=%d K=%d ta=%d tb=%d", M, N, K, ta, tb);
        check("gemm", s, Cm, Cr, (size_t)M * N, 2e-5, 1e-4);
        op_free(A), op_free(Bm), op_free(Cm), op_free(Cr);
    }
}

static void test_against_cpu(void) {
    test_gemm(7, 5, 3);
    test_gemm(64, 320, 77);
    cmp_linear_backward(7, 13, 5);
    cmp_linear_backward(154, 768, 320);
    cmp_conv2d(1, 3, 7, 7, 5, 3, 1, 1, 1);
    cmp_conv2d(2, 4, 9, 7, 6, 3, 2, 1, 1);
    cmp_conv2d(1, 5, 8, 8, 3, 3, 2, 0, 1); /* VAE downsample padding */
    cmp_conv2d(2, 8, 5, 6, 4, 1, 1, 0, 0); /* 1x1 */
    cmp_conv2d(1, 3, 6, 7, 2, 1, 2, 0, 0); /* 1x1 strided */
    cmp_conv2d(1, 2, 4, 4, 3, 3, 1, 2, 2); /* pad > k/2 */
    cmp_conv2d(2, 32, 16, 16, 64, 3, 1, 1, 1);
    cmp_groupnorm(1, 4, 5, 2, 0, 0);
    cmp_groupnorm(2, 6, 7, 3, 1, 0);
    cmp_groupnorm(2, 64, 100, 32, 1, 0);
    cmp_groupnorm(1, 64, 256, 32, 1, 10);
    cmp_layernorm(3, 7, 0);
    cmp_layernorm(77, 768, 0);
    cmp_layernorm(300, 320, 10);
    cmp_attention_backward(1, 3, 4, 2, 5, 0);
    cmp_attention_backward(2, 5, 5, 3, 4, 1);
    cmp_attention_backward(1, 64, 77, 8, 40, 0);
    cmp_attention_backward(2, 77, 77, 12, 64, 1);
    cmp_attention_backward(1, 300, 300, 2, 8, 1);
    cmp_elementwise_backward(1, 3, 5, 7);
    cmp_elementwise_backward(2, 64, 16, 16);
}

#ifdef LS_HAVE_CUDA
/* ---- the CUDA backend only: its second code paths and real SD1.5 shapes (too slow for the CPU runs) ---- */

/* attention on a sample of query rows against the reference run on those rows alone (rows are independent
 * without a causal mask): the full reference at 4096×4096 would take a minute */
static void test_attention_rows(int B, int Tq, int Tk, int NH, int Dh) {
    int C = NH * Dh, nr = 32;
    float *q = rand_buf((size_t)B * Tq * C, -3, 3), *k = rand_buf((size_t)B * Tk * C, -3, 3);
    float *v = rand_buf((size_t)B * Tk * C, -1, 1), *o = rand_buf((size_t)B * Tq * C, 9, 9);
    float *o_ref = op_alloc((size_t)nr * C * sizeof(float));
    double t0 = ls_time();
    op_attention(o, q, k, v, B, Tq, Tk, NH, Dh, 0);
    op_sync();
    double t1 = ls_time();
    char s[96];
    snprintf(s, sizeof s, "B=%d Tq=%d Tk=%d NH=%d Dh=%d rows", B, Tq, Tk, NH, Dh);
    int starts[3] = {0, Tq / 2 - nr / 2, Tq - nr};
    for (int bi = 0; bi < B; bi++)
        for (int i = 0; i < 3; i++) {
            size_t off = ((size_t)bi * Tq + starts[i]) * C;
            op_attention_ref(o_ref, q + off, k + (size_t)bi * Tk * C, v + (size_t)bi * Tk * C, 1, nr, Tk, NH, Dh, 0);
            check("attention (sampled rows)", s, o + off, o_ref, (size_t)nr * C, 2e-5, 1e-4);
        }
    printf("     time: attention %s %.2f ms (first call)\n", s, 1e3 * (t1 - t0));
    op_free(q), op_free(k), op_free(v), op_free(o), op_free(o_ref);
}

/* time of one call after a warm-up, printed (never checked) */
#define TIME_OP(what, call)                                                                                       \
    do {                                                                                                          \
        call;                                                                                                     \
        op_sync();                                                                                                \
        double t0_ = ls_time();                                                                                   \
        call;                                                                                                     \
        op_sync();                                                                                                \
        printf("     time: %-60s %8.3f ms\n", what, 1e3 * (ls_time() - t0_));                                   \
    } while (0)

static void time_sd_ops(void) {
    float *x = rand_buf((size_t)2 * 320 * 64 * 64, -1, 1), *w = rand_buf((size_t)320 * 320 * 9, -0.02f, 0.02f);
    float *b = rand_buf(320, -1, 1), *y = rand_buf((size_t)2 * 320 * 64 * 64, 0, 1), *g = rand_buf(1280, 0.5f, 1.5f);
    float *q = rand_buf((size_t)2 * 4096 * 320, -1, 1), *k = rand_buf((size_t)2 * 4096 * 320, -1, 1);
    float *v = rand_buf((size_t)2 * 4096 * 320, -1, 1), *o = rand_buf((size_t)2 * 4096 * 320, 0, 1);
    float *dq = rand_buf((size_t)2 * 4096 * 320, 0, 1), *dk = rand_buf((size_t)2 * 4096 * 320, 0, 1);
    float *dv = rand_buf((size_t)2 * 4096 * 320, 0, 1);
    TIME_OP("conv2d 2x320x64x64 -> 320 k3", op_conv2d(y, x, w, b, 2, 320, 64, 64, 320, 3, 1, 1, 1));
    TIME_OP("conv2d_backward 2x320x64x64 -> 320 k3 (dx dw db)",
            op_conv2d_backward(dq, dk, g, y, x, w, 2, 320, 64, 64, 320, 3, 1, 1, 1));
    TIME_OP("groupnorm+silu 2x320x4096 G32", op_groupnorm(y, x, g, b, 2, 320, 4096, 32, 1e-5f, 1));
    TIME_OP("attention self 2x4096 NH8 Dh40", op_attention(o, q, k, v, 2, 4096, 4096, 8, 40, 0));
    TIME_OP("attention cross 2x4096x77 NH8 Dh40", op_attention(o, q, k, v, 2, 4096, 77, 8, 40, 0));
    TIME_OP("attention_backward self 2x4096 NH8 Dh40",
            op_attention_backward(dq, dk, dv, o, q, k, v, 2, 4096, 4096, 8, 40, 0));
    TIME_OP("linear 8192x320 -> 320", op_linear(o, q, w, b, 8192, 320, 320));
    op_free(x), op_free(w), op_free(b), op_free(y), op_free(g), op_free(q), op_free(k), op_free(v), op_free(o);
    op_free(dq), op_free(dk), op_free(dv);
}

static void test_cuda(void) {
    /* the other code paths: im2col + cuBLAS when cuDNN is the default, the chunked attention forward */
    int dnn = ops_cuda_conv_cudnn(-1);
    printf("test_ops: cuda convolutions through im2col + cuBLAS%s\n", dnn ? " (the default is cuDNN)" : "");
    ops_cuda_conv_cudnn(0);
    if (dnn) {
        test_conv_set();
        cmp_conv2d(2, 4, 9, 7, 6, 3, 2, 1, 1);
        cmp_conv2d(2, 32, 16, 16, 64, 3, 1, 1, 1);
    }
#ifndef LS_CUDA_EMU
    cmp_conv2d(1, 128, 256, 256, 128, 3, 1, 1, 1); /* VAE decoder at 256x256: col is 302 MB, two bands */
#endif
    ops_cuda_conv_cudnn(dnn);
    printf("test_ops: cuda attention through the chunked cuBLAS path\n");
    ops_cuda_attention_fused(0);
    test_attention_set();
    ops_cuda_attention_fused(1);

#ifdef LS_CUDA_EMU /* scripts/gpu_emu_check.sh: the kernels emulated on the CPU, far too slow for these */
    printf("test_ops: cuda emulated on the CPU: SD1.5 shapes and timings left out\n");
    return;
#endif
    /* real SD1.5 shapes (512×512 image: 64×64 latent; 8 heads) */
    printf("test_ops: cuda at SD1.5 shapes\n");
    cmp_conv2d(1, 320, 64, 64, 320, 3, 1, 1, 1);  /* down_blocks.0 resnet conv, forward and backward vs CPU */
    cmp_conv2d(1, 4, 64, 64, 320, 3, 1, 1, 1);    /* conv_in */
    cmp_conv2d(1, 640, 32, 32, 640, 1, 1, 0, 0);  /* 1x1 shortcut */
    cmp_conv2d(1, 128, 128, 128, 128, 3, 2, 0, 1); /* VAE encoder downsample */
    test_conv2d(1, 320, 32, 32, 320, 3, 1, 1, 1, 1); /* against the reference */
    test_groupnorm(2, 1280, 8 * 8, 32, 1e-5f, 1, 0); /* up_blocks.0 */
    test_groupnorm(2, 320, 64 * 64, 32, 1e-5f, 1, 0);
    cmp_groupnorm(2, 1280, 64, 32, 1, 0);
    cmp_groupnorm(1, 320, 4096, 32, 1, 0);
    test_layernorm(2 * 4096, 320, 1e-5f, 0);
    cmp_layernorm(2 * 4096, 320, 0);
    test_linear(2 * 4096, 320, 320, 1);
    cmp_linear_backward(2 * 4096, 320, 1280);
    test_attention(2, 4096, 77, 8, 40, 0);     /* cross-attention: 4096 latent tokens × 77 text tokens */
    test_attention_rows(1, 4096, 4096, 8, 40); /* self-attention, down_blocks.0 */
    test_attention_rows(2, 1024, 1024, 8, 80); /* down_blocks.1 */
    test_attention_rows(2, 256, 256, 8, 160);  /* down_blocks.2: Dh 160 takes the chunked path */
    test_attention_rows(1, 4096, 4096, 1, 512); /* the VAE's mid-block attention */
    cmp_attention_backward(2, 4096, 77, 8, 40, 0);
    cmp_attention_backward(1, 4096, 4096, 8, 40, 0);
    cmp_elementwise_backward(2, 320, 64, 64);
    test_between_layers(2, 77, 768, 49408, (size_t)4 * 64 * 64 * 2);
    time_sd_ops();
}
#endif

/* Every entry of a compute backend's table is filled (a NULL would crash the first model that calls it). */
static void test_table_complete(const OpTable *t) {
    const void *const *e = (const void *const *)((const char *)t + offsetof(OpTable, alloc));
    size_t n = (sizeof *t - offsetof(OpTable, alloc)) / sizeof(void *);
    for (size_t i = 0; i < n; i++)
        if (!e[i]) n_fail++, printf("FAIL backend %s: op table entry %zu is NULL\n", t->name, i);
        else n_pass++;
}

/* Every op of the backend in use (ls_ops) against the references. */
static void test_backend(void) {
    test_known_values();

    test_linear(1, 1, 1, 1);
    test_linear(7, 13, 5, 1);
    test_linear(7, 13, 5, 0);
    test_linear(2, 1280, 1280, 1); /* time_embedding.linear_2 */
    test_linear(77, 768, 768, 1);  /* CLIP q_proj */
    test_linear(256, 320, 1280, 0);

    test_conv_set();

    test_groupnorm(1, 4, 5, 2, 1e-5f, 0, 0);
    test_groupnorm(2, 6, 7, 3, 1e-6f, 1, 0);
    test_groupnorm(1, 320, 32 * 32, 32, 1e-5f, 0, 0);
    test_groupnorm(2, 64, 100, 32, 1e-6f, 1, 0);
    test_groupnorm(1, 64, 256, 32, 1e-5f, 1, 10); /* |mean| >> std */

    test_layernorm(1, 1, 1e-5f, 0);
    test_layernorm(3, 7, 1e-5f, 0);
    test_layernorm(77, 768, 1e-5f, 0);
    test_layernorm(1024, 320, 1e-5f, 10);

    test_attention_set();

    test_geglu(3, 5);
    test_geglu(64, 1280);

    test_upsample(1, 2, 3, 4, 6, 8);
    test_upsample(2, 3, 3, 5, 5, 7);
    test_upsample(1, 1, 4, 4, 2, 2);
    test_upsample(1, 320, 32, 32, 64, 64);

    test_activation("silu", op_silu_inplace, silu_d, 1);
    test_activation("silu", op_silu_inplace, silu_d, 100003);
    test_activation("gelu", op_gelu_inplace, gelu_d, 17);
    test_activation("gelu", op_gelu_inplace, gelu_d, 100003);
    test_activation("quick_gelu", op_quick_gelu_inplace, quick_gelu_d, 17);
    test_activation("quick_gelu", op_quick_gelu_inplace, quick_gelu_d, 100003);

    test_adds(1, 3, 5);
    test_adds(2, 320, 1024);

    test_layout(1, 1, 2, 3);
    test_layout(2, 5, 3, 37);
    test_layout(2, 320, 320, 1024);

    test_timestep(3, 320, 0.0f);
    test_timestep(2, 8, 1.0f);

    test_between_layers(2, 77, 64, 300, 1000);
    test_between_layers(1, 77, 768, 49408, 200003); /* SD1.5's vocabulary; n past the threading cut-off */

    test_sampling(1000);
    test_sampling(4 * 64 * 64 * 2 + 3);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    double t0 = ls_time();
    for (const OpTable *const *b = ops_backends(); *b; b++) {
        ls_ops = *b;
        printf("test_ops: backend %s, %d threads\n", ls_ops->name, op_num_threads());
        test_table_complete(ls_ops);
        test_backend();
        if (ls_ops != &op_table_cpu) test_against_cpu();
#ifdef LS_HAVE_CUDA
        if (ls_ops == &op_table_cuda) test_cuda();
#endif
    }
#ifdef LS_HAVE_CUDA
    if (!ops_cuda_present()) printf("skip cuda: no GPU\n"); /* the CUDA backend is compiled in, no device here */
    else if (ops_select("cuda") != 0 || ls_ops != &op_table_cuda) n_fail++, printf("FAIL ops_select(\"cuda\")\n");
#endif
    /* selecting backends by name */
    if (ops_select("ref") != 0 || ls_ops != &op_table_ref) n_fail++, printf("FAIL ops_select(\"ref\")\n");
    if (ops_select("no-such-backend") != -1 || ls_ops != &op_table_ref)
        n_fail++, printf("FAIL ops_select of an unknown name must fail and keep the backend\n");
    if (ops_select("cpu") != 0 || ls_ops != &op_table_cpu) n_fail++, printf("FAIL ops_select(\"cpu\")\n");
    printf("test_ops: %.1f s\n", ls_time() - t0);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
