/* test_grad.c — every *_backward in ops.h against finite differences and a naive double reference.
 *
 * 1. Finite differences (small shapes incl. odd sizes, stride 2, asymmetric padding, causal and cross
 *    attention, GroupNorm+SiLU, non-2x resizes). For each op a naive double-precision forward written here
 *    defines L(inputs) = Σ r·y for a random projection r; central differences with step h on that double
 *    forward are accurate to ~1e-9, so the float32 analytic gradient (the backward called with dy = r) must
 *    match to float rounding: max|g - fd| / max|fd| ≤ FD_TOL for every input and parameter gradient. The
 *    double forward is itself checked against the real float op first, so FD differentiates that op.
 * 2. Semantics of the same calls: activation grads are overwritten (buffers start as NaN; a second call
 *    gives the same bits), parameter grads accumulate (start at g0, two calls give g0 + 2g), every NULL
 *    gradient is skipped while the others come out bit-identical, inputs are untouched, and no write lands
 *    outside any output (guard words around each buffer).
 * 3. Larger SD-ish shapes and the chunked code paths (conv bands, attention row chunks) against naive
 *    double backward loops written here; plus a few timings (printed, never checked).
 *
 * Usage: test_grad [fixtures_dir] [lorastyle_binary] (both ignored). Prints "N passed, M failed".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: mallocCheck, callocCheck, ls_time
#include "ops.h"    // defines: the ops and their backward passes

#define FD_TOL 1e-4   /* analytic (float) vs central differences (double), relative to max|fd| */
#define REF_TOL 1e-4  /* fast backward vs naive double backward at larger shapes, same measure */
#define FD_MAX 400    /* finite-difference elements checked per input (a fixed random sample beyond) */
#define MAXIN 4

/* ---------------- harness ---------------- */

static int n_pass, n_fail;
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

/* 64-bit LCG (Knuth MMIX constants); the top 24 bits give a uniform float in [0,1). */
static float rand_unit(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(rng_state >> 40) / 16777216.0f;
}
static float rand_range(float lo, float hi) { return lo + (hi - lo) * rand_unit(); }

/* one result line: "ok  |FAIL op shape what detail" */
static void report_msg(int ok, const char *op, const char *shape, const char *what, const char *msg) {
    printf("%s %-14s %-40s %-14s %s\n", ok ? "ok  " : "FAIL", op, shape, what, msg);
    ok ? n_pass++ : n_fail++;
}
static void report(int ok, const char *op, const char *shape, const char *what, const char *fmt, double v) {
    char msg[64];
    snprintf(msg, sizeof msg, fmt, v);
    report_msg(ok, op, shape, what, msg);
}

/* Guarded buffers: GUARD words of a fixed pattern on both sides catch writes out of bounds. */
#define GUARD 16
static const uint32_t GUARD_WORD = 0x7fc0beefu; /* a NaN payload no kernel produces */
static float *gbuf(size_t n) {
    float *p = mallocCheck((n + 2 * GUARD) * sizeof(float));
    for (size_t i = 0; i < GUARD; i++) {
        memcpy(p + i, &GUARD_WORD, 4);
        memcpy(p + GUARD + n + i, &GUARD_WORD, 4);
    }
    return p + GUARD;
}
static int gbuf_intact(const float *p, size_t n) {
    for (size_t i = 0; i < GUARD; i++)
        if (memcmp(p - GUARD + i, &GUARD_WORD, 4) || memcmp(p + n + i, &GUARD_WORD, 4)) return 0;
    return 1;
}
static void gfree(float *p) {
    if (p) free(p - GUARD);
}
static void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}
static float *rand_buf(size_t n, float lo, float hi) {
    float *p = gbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = rand_range(lo, hi);
    return p;
}

/* max|got - want| / max|want| (the error relative to the tensor's scale) */
static double rel_max_err(const float *got, const double *want, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= num)) num = d; /* NaN propagates */
        den = fmax(den, fabs(want[i]));
    }
    return num / (den > 0.0 ? den : 1.0);
}

/* ---------------- a test case: one op at one shape ---------------- */

typedef struct Case Case;
enum { NOGRAD = 0, ACT = 1, PARAM = 2 }; /* activation grads overwrite, parameter grads accumulate */

struct Case {
    const char *op;
    char shape[64];
    const void *P; /* the op's dims, a per-op struct */
    int nin;
    float *in[MAXIN];
    size_t n[MAXIN];
    const char *name[MAXIN]; /* "dx", "dw", ... */
    int kind[MAXIN];         /* NOGRAD, ACT or PARAM */
    size_t n_out;
    double h; /* finite-difference step */
    void (*fwd)(const Case *c, float *out);                           /* the real float op */
    void (*fwd_d)(const Case *c, double *const *in, double *out);     /* the same in double */
    void (*bwd)(const Case *c, const float *dy, float *const *grad); /* grad[i] NULL: skip input i */
};

static double loss_d(const Case *c, double *const *in, const double *r, double *y) {
    c->fwd_d(c, in, y);
    double L = 0.0;
    for (size_t j = 0; j < c->n_out; j++) L += r[j] * y[j];
    return L;
}

/* Fresh gradient buffers: activation grads NaN (they must be overwritten), parameter grads = init[i]
 * (or 0). Inputs without a gradient (or masked out by `only`) get NULL. */
static void grads_alloc(const Case *c, float **g, float *const *init, int only) {
    for (int i = 0; i < c->nin; i++) {
        g[i] = NULL;
        if (c->kind[i] == NOGRAD || (only >= 0 && only != i)) continue;
        g[i] = gbuf(c->n[i]);
        if (c->kind[i] == ACT) fill(g[i], c->n[i], NAN);
        else if (init && init[i]) memcpy(g[i], init[i], c->n[i] * sizeof(float));
        else fill(g[i], c->n[i], 0.0f);
    }
}
static int grads_intact(const Case *c, float **g) {
    int ok = 1;
    for (int i = 0; i < c->nin; i++) ok &= !g[i] || gbuf_intact(g[i], c->n[i]);
    return ok;
}
static void grads_free(const Case *c, float **g) {
    for (int i = 0; i < c->nin; i++) gfree(g[i]), g[i] = NULL;
}

static void run_case(Case *c) {
    size_t no = c->n_out;
    float *dy = rand_buf(no, -1, 1);
    double *r = mallocCheck(no * sizeof(double)), *yd = mallocCheck(no * sizeof(double));
    for (size_t j = 0; j < no; j++) r[j] = dy[j];
    double *ind[MAXIN];
    float *saved[MAXIN];
    for (int i = 0; i < c->nin; i++) {
        ind[i] = mallocCheck(c->n[i] * sizeof(double));
        for (size_t e = 0; e < c->n[i]; e++) ind[i][e] = c->in[i][e];
        saved[i] = mallocCheck(c->n[i] * sizeof(float));
        memcpy(saved[i], c->in[i], c->n[i] * sizeof(float));
    }

    /* the double forward used for FD is the op: compare with the real float op */
    float *y = gbuf(no);
    c->fwd(c, y);
    c->fwd_d(c, ind, yd);
    double e = rel_max_err(y, yd, no);
    report(e <= 1e-5, c->op, c->shape, "fwd(double)", "err %.2e", e);

    /* analytic gradients (parameter grads from 0) */
    float *g[MAXIN];
    grads_alloc(c, g, NULL, -1);
    c->bwd(c, dy, g);

    /* central differences on a fixed sample of each input's elements */
    for (int i = 0; i < c->nin; i++) {
        if (c->kind[i] == NOGRAD) continue;
        size_t m = c->n[i] < FD_MAX ? c->n[i] : FD_MAX;
        float *got = mallocCheck(m * sizeof(float));
        double *fd = mallocCheck(m * sizeof(double));
        for (size_t s = 0; s < m; s++) {
            size_t idx = c->n[i] <= FD_MAX ? s : (size_t)(rand_unit() * (float)c->n[i]) % c->n[i];
            double x0 = ind[i][idx];
            ind[i][idx] = x0 + c->h;
            double lp = loss_d(c, ind, r, yd);
            ind[i][idx] = x0 - c->h;
            double lm = loss_d(c, ind, r, yd);
            ind[i][idx] = x0;
            fd[s] = (lp - lm) / (2.0 * c->h);
            got[s] = g[i][idx];
        }
        e = rel_max_err(got, fd, m);
        char what[32];
        snprintf(what, sizeof what, "%s vs FD", c->name[i]);
        report(e <= FD_TOL, c->op, c->shape, what, "err %.2e", e);
        free(got), free(fd);
    }

    /* semantics: overwrite / accumulate / NULL skipping / const inputs / guards */
    int ok = grads_intact(c, g);
    char why[96] = "";
    float *init[MAXIN] = {0}, *g2[MAXIN];
    for (int i = 0; i < c->nin; i++)
        if (c->kind[i] == PARAM) init[i] = rand_buf(c->n[i], -1, 1);
    grads_alloc(c, g2, init, -1);
    c->bwd(c, dy, g2);
    c->bwd(c, dy, g2);
    for (int i = 0; i < c->nin && ok; i++) {
        if (!g[i]) continue;
        if (c->kind[i] == ACT && memcmp(g2[i], g[i], c->n[i] * sizeof(float))) {
            ok = 0, snprintf(why, sizeof why, "%s: second call differs (not overwritten?)", c->name[i]);
        } else if (c->kind[i] == PARAM) {
            double *want = mallocCheck(c->n[i] * sizeof(double));
            for (size_t k = 0; k < c->n[i]; k++) want[k] = (double)init[i][k] + 2.0 * g[i][k];
            if (!(rel_max_err(g2[i], want, c->n[i]) <= 1e-6))
                ok = 0, snprintf(why, sizeof why, "%s: two calls != g0 + 2g (not accumulated?)", c->name[i]);
            free(want);
        }
    }
    ok &= grads_intact(c, g2);
    grads_free(c, g2);
    for (int only = 0; only < c->nin && ok; only++) { /* one gradient at a time, the rest NULL */
        if (c->kind[only] == NOGRAD) continue;
        grads_alloc(c, g2, NULL, only);
        c->bwd(c, dy, g2);
        if (memcmp(g2[only], g[only], c->n[only] * sizeof(float)))
            ok = 0, snprintf(why, sizeof why, "%s alone (others NULL) differs", c->name[only]);
        ok &= grads_intact(c, g2);
        grads_free(c, g2);
    }
    grads_alloc(c, g2, NULL, c->nin); /* all NULL: must do nothing, harmlessly */
    c->bwd(c, dy, g2);
    for (int i = 0; i < c->nin; i++) {
        if (memcmp(saved[i], c->in[i], c->n[i] * sizeof(float)) || !gbuf_intact(c->in[i], c->n[i]))
            ok = 0, snprintf(why, sizeof why, "input %d modified", i);
        gfree(init[i]);
    }
    if (!gbuf_intact(dy, no) || !gbuf_intact(y, no)) ok = 0, snprintf(why, sizeof why, "guard overwritten");
    if (!ok && !why[0]) snprintf(why, sizeof why, "write outside a gradient buffer");
    report_msg(ok, c->op, c->shape, "semantics", ok ? "overwrite/+=/NULL/const/guards" : why);

    grads_free(c, g);
    for (int i = 0; i < c->nin; i++) free(ind[i]), free(saved[i]), gfree(c->in[i]);
    gfree(dy), gfree(y), free(r), free(yd);
}

/* ---------------- linear ---------------- */

typedef struct { int M, K, N; } LinP;

static void lin_fwd(const Case *c, float *y) {
    const LinP *p = c->P;
    op_linear(y, c->in[0], c->in[1], c->nin > 2 ? c->in[2] : NULL, p->M, p->K, p->N);
}
static void lin_fwd_d(const Case *c, double *const *in, double *y) {
    const LinP *p = c->P;
    for (int m = 0; m < p->M; m++)
        for (int n = 0; n < p->N; n++) {
            double acc = c->nin > 2 ? in[2][n] : 0.0;
            for (int k = 0; k < p->K; k++) acc += in[0][(size_t)m * p->K + k] * in[1][(size_t)n * p->K + k];
            y[(size_t)m * p->N + n] = acc;
        }
}
static void lin_bwd(const Case *c, const float *dy, float *const *g) {
    const LinP *p = c->P;
    op_linear_backward(g[0], g[1], c->nin > 2 ? g[2] : NULL, dy, c->in[0], c->in[1], p->M, p->K, p->N);
}
static void test_linear(int M, int K, int N, int bias) {
    static LinP p;
    p = (LinP){M, K, N};
    Case c = {.op = "linear", .P = &p, .nin = bias ? 3 : 2, .n_out = (size_t)M * N, .h = 1e-3,
              .fwd = lin_fwd, .fwd_d = lin_fwd_d, .bwd = lin_bwd,
              .name = {"dx", "dw", "db"}, .kind = {ACT, PARAM, PARAM}};
    snprintf(c.shape, sizeof c.shape, "M=%d K=%d N=%d%s", M, K, N, bias ? " bias" : "");
    c.n[0] = (size_t)M * K, c.n[1] = (size_t)N * K, c.n[2] = N;
    c.in[0] = rand_buf(c.n[0], -1, 1), c.in[1] = rand_buf(c.n[1], -1, 1);
    if (bias) c.in[2] = rand_buf(N, -1, 1);
    run_case(&c);
}

/* ---------------- conv2d ---------------- */

typedef struct { int B, Cin, H, W, Cout, k, stride, pad0, pad1, Ho, Wo; } ConvP;

static void conv_fwd(const Case *c, float *y) {
    const ConvP *p = c->P;
    op_conv2d(y, c->in[0], c->in[1], c->nin > 2 ? c->in[2] : NULL, p->B, p->Cin, p->H, p->W, p->Cout, p->k,
              p->stride, p->pad0, p->pad1);
}
static void conv_fwd_d(const Case *c, double *const *in, double *y) {
    const ConvP *p = c->P;
    int k = p->k;
    for (int b = 0; b < p->B; b++)
        for (int co = 0; co < p->Cout; co++)
            for (int oh = 0; oh < p->Ho; oh++)
                for (int ow = 0; ow < p->Wo; ow++) {
                    double acc = c->nin > 2 ? in[2][co] : 0.0;
                    for (int ci = 0; ci < p->Cin; ci++)
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++) {
                                int ih = oh * p->stride - p->pad0 + kh, iw = ow * p->stride - p->pad0 + kw;
                                if (ih < 0 || ih >= p->H || iw < 0 || iw >= p->W) continue;
                                acc += in[0][(((size_t)b * p->Cin + ci) * p->H + ih) * p->W + iw] *
                                       in[1][(((size_t)co * p->Cin + ci) * k + kh) * k + kw];
                            }
                    y[(((size_t)b * p->Cout + co) * p->Ho + oh) * p->Wo + ow] = acc;
                }
}
static void conv_bwd(const Case *c, const float *dy, float *const *g) {
    const ConvP *p = c->P;
    op_conv2d_backward(g[0], g[1], c->nin > 2 ? g[2] : NULL, dy, c->in[0], c->in[1], p->B, p->Cin, p->H, p->W,
                       p->Cout, p->k, p->stride, p->pad0, p->pad1);
}
static ConvP conv_dims(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1) {
    return (ConvP){B, Cin, H, W, Cout, k, stride, pad0, pad1, op_conv2d_out(H, k, stride, pad0, pad1),
                   op_conv2d_out(W, k, stride, pad0, pad1)};
}
static void test_conv(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1,
                      int bias) {
    static ConvP p;
    p = conv_dims(B, Cin, H, W, Cout, k, stride, pad0, pad1);
    Case c = {.op = "conv2d", .P = &p, .nin = bias ? 3 : 2, .n_out = (size_t)B * Cout * p.Ho * p.Wo,
              .h = 1e-3, .fwd = conv_fwd, .fwd_d = conv_fwd_d, .bwd = conv_bwd,
              .name = {"dx", "dw", "db"}, .kind = {ACT, PARAM, PARAM}};
    snprintf(c.shape, sizeof c.shape, "%dx%dx%dx%d->%d k%d s%d p%d,%d%s", B, Cin, H, W, Cout, k, stride, pad0,
             pad1, bias ? " b" : "");
    c.n[0] = (size_t)B * Cin * H * W, c.n[1] = (size_t)Cout * Cin * k * k, c.n[2] = Cout;
    c.in[0] = rand_buf(c.n[0], -1, 1), c.in[1] = rand_buf(c.n[1], -1, 1);
    if (bias) c.in[2] = rand_buf(Cout, -1, 1);
    run_case(&c);
}

/* ---------------- GroupNorm / LayerNorm ---------------- */

typedef struct { int B, C, HW, G, silu, saved; float eps; } GnP;

static void gn_fwd(const Case *c, float *y) {
    const GnP *p = c->P;
    op_groupnorm(y, c->in[0], c->in[1], c->in[2], p->B, p->C, p->HW, p->G, p->eps, p->silu);
}
static void gn_fwd_d(const Case *c, double *const *in, double *y) {
    const GnP *p = c->P;
    int cg = p->C / p->G;
    size_t n = (size_t)cg * p->HW;
    for (int bg = 0; bg < p->B * p->G; bg++) {
        const double *x = in[0] + bg * n;
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < n; i++) mean += x[i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
        double rstd = 1.0 / sqrt(var / (double)n + p->eps);
        for (size_t i = 0; i < n; i++) {
            int ch = bg % p->G * cg + (int)(i / p->HW);
            double v = (x[i] - mean) * rstd * in[1][ch] + in[2][ch];
            y[bg * n + i] = p->silu ? v / (1.0 + exp(-v)) : v;
        }
    }
}
static void gn_bwd(const Case *c, const float *dy, float *const *g) {
    const GnP *p = c->P;
    float *mean = NULL, *rstd = NULL, *y = NULL;
    if (p->saved) { /* the training path: stats from the forward variant */
        mean = mallocCheck((size_t)p->B * p->G * sizeof(float));
        rstd = mallocCheck((size_t)p->B * p->G * sizeof(float));
        y = mallocCheck((size_t)p->B * p->C * p->HW * sizeof(float));
        op_groupnorm_fwd_stats(y, mean, rstd, c->in[0], c->in[1], c->in[2], p->B, p->C, p->HW, p->G, p->eps,
                               p->silu);
    }
    op_groupnorm_backward(g[0], g[1], g[2], dy, mean, rstd, c->in[0], c->in[1], c->in[2], p->B, p->C, p->HW,
                          p->G, p->eps, p->silu);
    free(mean), free(rstd), free(y);
}
static void test_groupnorm(int B, int C, int HW, int G, float eps, int silu, int saved) {
    static GnP p;
    p = (GnP){B, C, HW, G, silu, saved, eps};
    Case c = {.op = "groupnorm", .P = &p, .nin = 3, .n_out = (size_t)B * C * HW, .h = 1e-3, .fwd = gn_fwd,
              .fwd_d = gn_fwd_d, .bwd = gn_bwd, .name = {"dx", "dgamma", "dbeta"},
              .kind = {ACT, PARAM, PARAM}};
    snprintf(c.shape, sizeof c.shape, "B=%d C=%d HW=%d G=%d%s%s", B, C, HW, G, silu ? " silu" : "",
             saved ? " saved" : "");
    c.n[0] = (size_t)B * C * HW, c.n[1] = c.n[2] = C;
    c.in[0] = rand_buf(c.n[0], -1, 1);
    for (size_t i = 0; i < c.n[0]; i++) c.in[0][i] += 0.5f * (float)((i / HW) % 5); /* channel offsets */
    c.in[1] = rand_buf(C, 0.5f, 1.5f), c.in[2] = rand_buf(C, -0.5f, 0.5f);
    run_case(&c);
}

typedef struct { int N, D, saved; float eps; } LnP;

static void ln_fwd(const Case *c, float *y) {
    const LnP *p = c->P;
    op_layernorm(y, c->in[0], c->in[1], c->in[2], p->N, p->D, p->eps);
}
static void ln_fwd_d(const Case *c, double *const *in, double *y) {
    const LnP *p = c->P;
    for (int r = 0; r < p->N; r++) {
        const double *x = in[0] + (size_t)r * p->D;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < p->D; i++) mean += x[i];
        mean /= p->D;
        for (int i = 0; i < p->D; i++) var += (x[i] - mean) * (x[i] - mean);
        double rstd = 1.0 / sqrt(var / p->D + p->eps);
        for (int i = 0; i < p->D; i++) y[(size_t)r * p->D + i] = (x[i] - mean) * rstd * in[1][i] + in[2][i];
    }
}
static void ln_bwd(const Case *c, const float *dy, float *const *g) {
    const LnP *p = c->P;
    float *mean = NULL, *rstd = NULL, *y = NULL;
    if (p->saved) {
        mean = mallocCheck((size_t)p->N * sizeof(float)), rstd = mallocCheck((size_t)p->N * sizeof(float));
        y = mallocCheck((size_t)p->N * p->D * sizeof(float));
        op_layernorm_fwd_stats(y, mean, rstd, c->in[0], c->in[1], c->in[2], p->N, p->D, p->eps);
    }
    op_layernorm_backward(g[0], g[1], g[2], dy, mean, rstd, c->in[0], c->in[1], p->N, p->D, p->eps);
    free(mean), free(rstd), free(y);
}
static void test_layernorm(int N, int D, int saved) {
    static LnP p;
    p = (LnP){N, D, saved, 1e-5f};
    Case c = {.op = "layernorm", .P = &p, .nin = 3, .n_out = (size_t)N * D, .h = 1e-3, .fwd = ln_fwd,
              .fwd_d = ln_fwd_d, .bwd = ln_bwd, .name = {"dx", "dgamma", "dbeta"},
              .kind = {ACT, PARAM, PARAM}};
    snprintf(c.shape, sizeof c.shape, "N=%d D=%d%s", N, D, saved ? " saved" : "");
    c.n[0] = (size_t)N * D, c.n[1] = c.n[2] = D;
    c.in[0] = rand_buf(c.n[0], -2, 3), c.in[1] = rand_buf(D, 0.5f, 1.5f), c.in[2] = rand_buf(D, -0.5f, 0.5f);
    run_case(&c);
}

/* ---------------- attention ---------------- */

typedef struct { int B, Tq, Tk, NH, Dh, causal; } AttP;

static void att_fwd(const Case *c, float *y) {
    const AttP *p = c->P;
    op_attention(y, c->in[0], c->in[1], c->in[2], p->B, p->Tq, p->Tk, p->NH, p->Dh, p->causal);
}
/* softmax(q kᵀ/√Dh) v per (batch, head, query row), all in double */
static void att_fwd_d(const Case *c, double *const *in, double *y) {
    const AttP *p = c->P;
    int C = p->NH * p->Dh;
    double scale = 1.0 / sqrt((double)p->Dh), *s = mallocCheck((size_t)p->Tk * sizeof(double));
    for (int b = 0; b < p->B; b++)
        for (int h = 0; h < p->NH; h++)
            for (int i = 0; i < p->Tq; i++) {
                const double *qi = in[0] + ((size_t)b * p->Tq + i) * C + h * p->Dh;
                int nk = p->causal ? i + 1 : p->Tk;
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < nk; j++) {
                    const double *kj = in[1] + ((size_t)b * p->Tk + j) * C + h * p->Dh;
                    double dot = 0.0;
                    for (int d = 0; d < p->Dh; d++) dot += qi[d] * kj[d];
                    s[j] = dot * scale, mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < nk; j++) s[j] = exp(s[j] - mx), sum += s[j];
                for (int d = 0; d < p->Dh; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < nk; j++)
                        acc += s[j] * in[2][((size_t)b * p->Tk + j) * C + h * p->Dh + d];
                    y[((size_t)b * p->Tq + i) * C + h * p->Dh + d] = acc / sum;
                }
            }
    free(s);
}
static void att_bwd(const Case *c, const float *dy, float *const *g) {
    const AttP *p = c->P;
    op_attention_backward(g[0], g[1], g[2], dy, c->in[0], c->in[1], c->in[2], p->B, p->Tq, p->Tk, p->NH,
                          p->Dh, p->causal);
}
static void test_attention(int B, int Tq, int Tk, int NH, int Dh, int causal) {
    static AttP p;
    p = (AttP){B, Tq, Tk, NH, Dh, causal};
    int C = NH * Dh;
    Case c = {.op = "attention", .P = &p, .nin = 3, .n_out = (size_t)B * Tq * C, .h = 1e-3, .fwd = att_fwd,
              .fwd_d = att_fwd_d, .bwd = att_bwd, .name = {"dq", "dk", "dv"}, .kind = {ACT, ACT, ACT}};
    snprintf(c.shape, sizeof c.shape, "B=%d Tq=%d Tk=%d NH=%d Dh=%d%s", B, Tq, Tk, NH, Dh,
             causal ? " causal" : "");
    c.n[0] = (size_t)B * Tq * C, c.n[1] = c.n[2] = (size_t)B * Tk * C;
    c.in[0] = rand_buf(c.n[0], -2, 2), c.in[1] = rand_buf(c.n[1], -2, 2), c.in[2] = rand_buf(c.n[2], -1, 1);
    run_case(&c);
}

/* ---------------- activations, GEGLU, channel bias ---------------- */

typedef struct { int kind; } ActP; /* 0 silu, 1 gelu, 2 quick_gelu */
static const char *act_names[] = {"silu", "gelu", "quick_gelu"};

static void act_fwd(const Case *c, float *y) {
    const ActP *p = c->P;
    memcpy(y, c->in[0], c->n[0] * sizeof(float));
    if (p->kind == 0) op_silu_inplace(y, c->n[0]);
    if (p->kind == 1) op_gelu_inplace(y, c->n[0]);
    if (p->kind == 2) op_quick_gelu_inplace(y, c->n[0]);
}
static void act_fwd_d(const Case *c, double *const *in, double *y) {
    const ActP *p = c->P;
    for (size_t i = 0; i < c->n[0]; i++) {
        double x = in[0][i];
        y[i] = p->kind == 0 ? x / (1.0 + exp(-x))
             : p->kind == 1 ? 0.5 * x * (1.0 + erf(x / sqrt(2.0)))
                            : x / (1.0 + exp(-1.702 * x));
    }
}
static void act_bwd(const Case *c, const float *dy, float *const *g) {
    const ActP *p = c->P;
    if (!g[0]) return;
    if (p->kind == 0) op_silu_backward(g[0], dy, c->in[0], c->n[0]);
    if (p->kind == 1) op_gelu_backward(g[0], dy, c->in[0], c->n[0]);
    if (p->kind == 2) op_quick_gelu_backward(g[0], dy, c->in[0], c->n[0]);
}
static void test_activation(int kind, size_t n) {
    static ActP p[3];
    p[kind].kind = kind;
    Case c = {.op = act_names[kind], .P = &p[kind], .nin = 1, .n_out = n, .h = 1e-3, .fwd = act_fwd,
              .fwd_d = act_fwd_d, .bwd = act_bwd, .name = {"dx"}, .kind = {ACT}};
    snprintf(c.shape, sizeof c.shape, "n=%zu", n);
    c.n[0] = n, c.in[0] = rand_buf(n, -5, 5);
    run_case(&c);
    /* in place (dx == dy) is allowed for activations */
    float *x = rand_buf(n, -5, 5), *dy = rand_buf(n, -1, 1), *dx = gbuf(n), *inpl = gbuf(n);
    memcpy(inpl, dy, n * sizeof(float));
    Case t = c;
    t.in[0] = x;
    act_bwd(&t, dy, (float *[]){dx});
    act_bwd(&t, inpl, (float *[]){inpl});
    int ok = !memcmp(dx, inpl, n * sizeof(float));
    report_msg(ok, c.op, c.shape, "in place", "dx == dy allowed");
    gfree(x), gfree(dy), gfree(dx), gfree(inpl);
}

typedef struct { int N, D; } GegP;
static void geglu_fwd(const Case *c, float *y) {
    const GegP *p = c->P;
    op_geglu(y, c->in[0], p->N, p->D);
}
static void geglu_fwd_d(const Case *c, double *const *in, double *y) {
    const GegP *p = c->P;
    for (int r = 0; r < p->N; r++)
        for (int d = 0; d < p->D; d++) {
            double a = in[0][(size_t)r * 2 * p->D + d], g = in[0][(size_t)r * 2 * p->D + p->D + d];
            y[(size_t)r * p->D + d] = a * 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        }
}
static void geglu_bwd(const Case *c, const float *dy, float *const *g) {
    const GegP *p = c->P;
    if (g[0]) op_geglu_backward(g[0], dy, c->in[0], p->N, p->D);
}
static void test_geglu(int N, int D) {
    static GegP p;
    p = (GegP){N, D};
    Case c = {.op = "geglu", .P = &p, .nin = 1, .n_out = (size_t)N * D, .h = 1e-3, .fwd = geglu_fwd,
              .fwd_d = geglu_fwd_d, .bwd = geglu_bwd, .name = {"dx"}, .kind = {ACT}};
    snprintf(c.shape, sizeof c.shape, "N=%d D=%d", N, D);
    c.n[0] = (size_t)N * 2 * D, c.in[0] = rand_buf(c.n[0], -3, 3);
    run_case(&c);
}

typedef struct { int B, C, HW; } BiasP;
static void bias_fwd(const Case *c, float *y) {
    const BiasP *p = c->P;
    memcpy(y, c->in[0], c->n[0] * sizeof(float));
    op_add_channel_bias(y, c->in[1], p->B, p->C, p->HW);
}
static void bias_fwd_d(const Case *c, double *const *in, double *y) {
    const BiasP *p = c->P;
    for (size_t i = 0; i < c->n[0]; i++) y[i] = in[0][i] + in[1][i / p->HW];
}
static void bias_bwd(const Case *c, const float *dy, float *const *g) {
    const BiasP *p = c->P;
    if (g[1]) op_add_channel_bias_backward(g[1], dy, p->B, p->C, p->HW);
}
static void test_channel_bias(int B, int C, int HW) {
    static BiasP p;
    p = (BiasP){B, C, HW};
    /* y's own input needs no op (dy passes through); v's gradient accumulates like a bias's */
    Case c = {.op = "channel_bias", .P = &p, .nin = 2, .n_out = (size_t)B * C * HW, .h = 1e-3,
              .fwd = bias_fwd, .fwd_d = bias_fwd_d, .bwd = bias_bwd, .name = {"-", "dv"},
              .kind = {NOGRAD, PARAM}};
    snprintf(c.shape, sizeof c.shape, "B=%d C=%d HW=%d", B, C, HW);
    c.n[0] = (size_t)B * C * HW, c.n[1] = (size_t)B * C;
    c.in[0] = rand_buf(c.n[0], -1, 1), c.in[1] = rand_buf(c.n[1], -1, 1);
    run_case(&c);
}

/* ---------------- layout ops ---------------- */

typedef struct { int B, C, H, W, Ho, Wo; } UpP;
static void up_fwd(const Case *c, float *y) {
    const UpP *p = c->P;
    op_upsample_nearest(y, c->in[0], p->B, p->C, p->H, p->W, p->Ho, p->Wo);
}
static void up_fwd_d(const Case *c, double *const *in, double *y) { /* via the float reference's indices */
    const UpP *p = c->P;
    size_t nx = c->n[0];
    float *idx = mallocCheck(nx * sizeof(float)), *out = mallocCheck(c->n_out * sizeof(float));
    for (size_t i = 0; i < nx; i++) idx[i] = (float)i; /* exact in float for these sizes */
    op_upsample_nearest_ref(out, idx, p->B, p->C, p->H, p->W, p->Ho, p->Wo);
    for (size_t j = 0; j < c->n_out; j++) y[j] = in[0][(size_t)out[j]];
    free(idx), free(out);
}
static void up_bwd(const Case *c, const float *dy, float *const *g) {
    const UpP *p = c->P;
    if (g[0]) op_upsample_nearest_backward(g[0], dy, p->B, p->C, p->H, p->W, p->Ho, p->Wo);
}
static void test_upsample(int B, int C, int H, int W, int Ho, int Wo) {
    static UpP p;
    p = (UpP){B, C, H, W, Ho, Wo};
    Case c = {.op = "upsample", .P = &p, .nin = 1, .n_out = (size_t)B * C * Ho * Wo, .h = 1e-2, .fwd = up_fwd,
              .fwd_d = up_fwd_d, .bwd = up_bwd, .name = {"dx"}, .kind = {ACT}};
    snprintf(c.shape, sizeof c.shape, "%dx%dx%dx%d -> %dx%d", B, C, H, W, Ho, Wo);
    c.n[0] = (size_t)B * C * H * W, c.in[0] = rand_buf(c.n[0], -1, 1);
    run_case(&c);
}

typedef struct { int B, Ca, Cb, HW; } CatP;
static void cat_fwd(const Case *c, float *y) {
    const CatP *p = c->P;
    op_concat_channels(y, c->in[0], c->in[1], p->B, p->Ca, p->Cb, p->HW);
}
static void cat_fwd_d(const Case *c, double *const *in, double *y) {
    const CatP *p = c->P;
    size_t na = (size_t)p->Ca * p->HW, nb = (size_t)p->Cb * p->HW;
    for (int b = 0; b < p->B; b++) {
        for (size_t i = 0; i < na; i++) y[b * (na + nb) + i] = in[0][b * na + i];
        for (size_t i = 0; i < nb; i++) y[b * (na + nb) + na + i] = in[1][b * nb + i];
    }
}
static void cat_bwd(const Case *c, const float *dy, float *const *g) {
    const CatP *p = c->P;
    op_concat_channels_backward(g[0], g[1], dy, p->B, p->Ca, p->Cb, p->HW);
}
static void test_concat(int B, int Ca, int Cb, int HW) {
    static CatP p;
    p = (CatP){B, Ca, Cb, HW};
    Case c = {.op = "concat", .P = &p, .nin = 2, .n_out = (size_t)B * (Ca + Cb) * HW, .h = 1e-2,
              .fwd = cat_fwd, .fwd_d = cat_fwd_d, .bwd = cat_bwd, .name = {"da", "db"}, .kind = {ACT, ACT}};
    snprintf(c.shape, sizeof c.shape, "B=%d Ca=%d Cb=%d HW=%d", B, Ca, Cb, HW);
    c.n[0] = (size_t)B * Ca * HW, c.n[1] = (size_t)B * Cb * HW;
    c.in[0] = rand_buf(c.n[0], -1, 1), c.in[1] = rand_buf(c.n[1], -1, 1);
    run_case(&c);
}

typedef struct { int B, C, T, to_ntc; } TrP;
static void tr_fwd(const Case *c, float *y) {
    const TrP *p = c->P;
    (p->to_ntc ? op_nchw_to_ntc : op_ntc_to_nchw)(y, c->in[0], p->B, p->C, p->T);
}
static void tr_fwd_d(const Case *c, double *const *in, double *y) {
    const TrP *p = c->P;
    for (int b = 0; b < p->B; b++)
        for (int ch = 0; ch < p->C; ch++)
            for (int t = 0; t < p->T; t++) {
                size_t nchw = ((size_t)b * p->C + ch) * p->T + t, ntc = ((size_t)b * p->T + t) * p->C + ch;
                if (p->to_ntc) y[ntc] = in[0][nchw];
                else y[nchw] = in[0][ntc];
            }
}
static void tr_bwd(const Case *c, const float *dy, float *const *g) {
    const TrP *p = c->P;
    if (g[0]) (p->to_ntc ? op_nchw_to_ntc_backward : op_ntc_to_nchw_backward)(g[0], dy, p->B, p->C, p->T);
}
static void test_transpose(int B, int C, int T, int to_ntc) {
    static TrP p[2];
    p[to_ntc] = (TrP){B, C, T, to_ntc};
    Case c = {.op = to_ntc ? "nchw_to_ntc" : "ntc_to_nchw", .P = &p[to_ntc], .nin = 1,
              .n_out = (size_t)B * C * T, .h = 1e-2, .fwd = tr_fwd, .fwd_d = tr_fwd_d, .bwd = tr_bwd,
              .name = {"dx"}, .kind = {ACT}};
    snprintf(c.shape, sizeof c.shape, "B=%d C=%d T=%d", B, C, T);
    c.n[0] = (size_t)B * C * T, c.in[0] = rand_buf(c.n[0], -1, 1);
    run_case(&c);
}

/* A frozen layer (dw = NULL) need not keep its input: x = NULL must give the same dx. */
static void test_frozen_without_input(void) {
    int M = 9, K = 6, N = 5;
    float *x = rand_buf((size_t)M * K, -1, 1), *w = rand_buf((size_t)N * K, -1, 1);
    float *dy = rand_buf((size_t)M * N, -1, 1), *dx = gbuf((size_t)M * K), *dx0 = gbuf((size_t)M * K);
    op_linear_backward(dx, NULL, NULL, dy, x, w, M, K, N);
    op_linear_backward(dx0, NULL, NULL, dy, NULL, w, M, K, N);
    int ok = !memcmp(dx, dx0, (size_t)M * K * sizeof(float));
    report_msg(ok, "linear", "M=9 K=6 N=5", "x = NULL", "frozen: dx without the input");
    gfree(x), gfree(w), gfree(dy), gfree(dx), gfree(dx0);
    for (int k = 1; k <= 3; k += 2) { /* the direct 1x1 path and the col2im path */
        ConvP p = conv_dims(2, 3, 5, 6, 4, k, 1, k / 2, k / 2);
        size_t nx = (size_t)2 * 3 * 5 * 6, ny = (size_t)2 * 4 * p.Ho * p.Wo, nw = (size_t)4 * 3 * k * k;
        float *cx = rand_buf(nx, -1, 1), *cw = rand_buf(nw, -1, 1), *cdy = rand_buf(ny, -1, 1);
        float *cdx = gbuf(nx), *cdx0 = gbuf(nx);
        op_conv2d_backward(cdx, NULL, NULL, cdy, cx, cw, 2, 3, 5, 6, 4, k, 1, k / 2, k / 2);
        op_conv2d_backward(cdx0, NULL, NULL, cdy, NULL, cw, 2, 3, 5, 6, 4, k, 1, k / 2, k / 2);
        ok = !memcmp(cdx, cdx0, nx * sizeof(float)) && gbuf_intact(cdx0, nx);
        report_msg(ok, "conv2d", k == 1 ? "2x3x5x6->4 k1" : "2x3x5x6->4 k3", "x = NULL",
                   "frozen: dx without the input");
        gfree(cx), gfree(cw), gfree(cdy), gfree(cdx), gfree(cdx0);
    }
}

/* ---------------- larger shapes against naive double backward loops ---------------- */

static void check_ref(const char *op, const char *shape, const char *what, const float *got,
                      const double *want, size_t n) {
    double e = rel_max_err(got, want, n);
    report(e <= REF_TOL, op, shape, what, "err %.2e", e);
}

/* conv: every (output, tap) pair adds dy·w into dx, dy·x into dw */
static void conv_ref_large(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad0, int pad1) {
    ConvP p = conv_dims(B, Cin, H, W, Cout, k, stride, pad0, pad1);
    size_t nx = (size_t)B * Cin * H * W, nw = (size_t)Cout * Cin * k * k, ny = (size_t)B * Cout * p.Ho * p.Wo;
    float *x = rand_buf(nx, -1, 1), *w = rand_buf(nw, -0.1f, 0.1f), *dy = rand_buf(ny, -1, 1);
    float *dx = gbuf(nx), *dw = gbuf(nw), *db = gbuf(Cout);
    fill(dw, nw, 0.0f), fill(db, Cout, 0.0f);
    op_conv2d_backward(dx, dw, db, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, pad1);
    double *rx = callocCheck(nx, sizeof(double)), *rw = callocCheck(nw, sizeof(double));
    double *rb = callocCheck(Cout, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int co = 0; co < Cout; co++)
            for (int oh = 0; oh < p.Ho; oh++)
                for (int ow = 0; ow < p.Wo; ow++) {
                    double g = dy[(((size_t)b * Cout + co) * p.Ho + oh) * p.Wo + ow];
                    rb[co] += g;
                    for (int ci = 0; ci < Cin; ci++)
                        for (int kh = 0; kh < k; kh++) {
                            int ih = oh * stride - pad0 + kh;
                            if (ih < 0 || ih >= H) continue;
                            for (int kw = 0; kw < k; kw++) {
                                int iw = ow * stride - pad0 + kw;
                                if (iw < 0 || iw >= W) continue;
                                size_t xi = (((size_t)b * Cin + ci) * H + ih) * W + iw;
                                size_t wi = (((size_t)co * Cin + ci) * k + kh) * k + kw;
                                rx[xi] += g * w[wi];
                                rw[wi] += g * x[xi];
                            }
                        }
                }
    char s[64];
    snprintf(s, sizeof s, "%dx%dx%dx%d->%d k%d s%d p%d,%d", B, Cin, H, W, Cout, k, stride, pad0, pad1);
    check_ref("conv2d", s, "dx vs ref", dx, rx, nx);
    check_ref("conv2d", s, "dw vs ref", dw, rw, nw);
    check_ref("conv2d", s, "db vs ref", db, rb, Cout);
    int ok = gbuf_intact(dx, nx) && gbuf_intact(dw, nw) && gbuf_intact(db, Cout);
    report_msg(ok, "conv2d", s, "guards", "");
    gfree(x), gfree(w), gfree(dy), gfree(dx), gfree(dw), gfree(db), free(rx), free(rw), free(rb);
}

/* attention: per query row, the full softmax row in double; dS = P∘(dP - Σ P dP) */
static void attn_ref_large(int B, int Tq, int Tk, int NH, int Dh, int causal) {
    int C = NH * Dh;
    size_t nq = (size_t)B * Tq * C, nk = (size_t)B * Tk * C;
    float *q = rand_buf(nq, -1.5f, 1.5f), *k = rand_buf(nk, -1.5f, 1.5f), *v = rand_buf(nk, -1, 1);
    float *dout = rand_buf(nq, -1, 1), *dq = gbuf(nq), *dk = gbuf(nk), *dv = gbuf(nk);
    double t0 = ls_time();
    op_attention_backward(dq, dk, dv, dout, q, k, v, B, Tq, Tk, NH, Dh, causal);
    double t_bwd = ls_time() - t0;
    double *rq = callocCheck(nq, sizeof(double)), *rk = callocCheck(nk, sizeof(double));
    double *rv = callocCheck(nk, sizeof(double)), *P = mallocCheck((size_t)Tk * sizeof(double));
    double *dP = mallocCheck((size_t)Tk * sizeof(double)), scale = 1.0 / sqrt((double)Dh);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                size_t qi = ((size_t)b * Tq + i) * C + h * Dh;
                int n = causal ? i + 1 : Tk;
                double mx = -INFINITY, sum = 0.0, D = 0.0;
                for (int j = 0; j < n; j++) {
                    size_t kj = ((size_t)b * Tk + j) * C + h * Dh;
                    double s = 0.0, g = 0.0;
                    for (int d = 0; d < Dh; d++) {
                        s += (double)q[qi + d] * k[kj + d];
                        g += (double)dout[qi + d] * v[kj + d];
                    }
                    P[j] = s * scale, dP[j] = g, mx = fmax(mx, P[j]);
                }
                for (int j = 0; j < n; j++) P[j] = exp(P[j] - mx), sum += P[j];
                for (int j = 0; j < n; j++) P[j] /= sum, D += P[j] * dP[j];
                for (int j = 0; j < n; j++) {
                    size_t kj = ((size_t)b * Tk + j) * C + h * Dh;
                    double dS = P[j] * (dP[j] - D);
                    for (int d = 0; d < Dh; d++) {
                        rq[qi + d] += scale * dS * k[kj + d];
                        rk[kj + d] += scale * dS * q[qi + d];
                        rv[kj + d] += P[j] * dout[qi + d];
                    }
                }
            }
    char s[64];
    snprintf(s, sizeof s, "B=%d Tq=%d Tk=%d NH=%d Dh=%d%s", B, Tq, Tk, NH, Dh, causal ? " causal" : "");
    check_ref("attention", s, "dq vs ref", dq, rq, nq);
    check_ref("attention", s, "dk vs ref", dk, rk, nk);
    check_ref("attention", s, "dv vs ref", dv, rv, nk);
    report(gbuf_intact(dq, nq) && gbuf_intact(dk, nk) && gbuf_intact(dv, nk), "attention", s, "guards",
           "bwd %.3f s", t_bwd);
    gfree(q), gfree(k), gfree(v), gfree(dout), gfree(dq), gfree(dk), gfree(dv);
    free(rq), free(rk), free(rv), free(P), free(dP);
}

/* GroupNorm (+SiLU) at an SD shape: the saved-stats forward against op_groupnorm, saved vs recomputed
 * statistics (must be bit-identical), and the gradients against the formula evaluated in double. */
static void groupnorm_ref_large(int B, int C, int HW, int G, float eps, int silu) {
    size_t n = (size_t)B * C * HW;
    int cg = C / G;
    float *x = rand_buf(n, -1, 1), *gamma = rand_buf(C, 0.5f, 1.5f), *beta = rand_buf(C, -0.5f, 0.5f);
    for (size_t i = 0; i < n; i++) x[i] += 3.0f; /* an offset: mean ≫ std, the harder case */
    float *dy = rand_buf(n, -1, 1), *y = gbuf(n), *y2 = gbuf(n), *dx = gbuf(n), *dx2 = gbuf(n);
    float *mean = gbuf((size_t)B * G), *rstd = gbuf((size_t)B * G);
    float *dg = gbuf(C), *dbt = gbuf(C), *dg2 = gbuf(C), *dbt2 = gbuf(C);
    fill(dg, C, 0), fill(dbt, C, 0), fill(dg2, C, 0), fill(dbt2, C, 0);
    op_groupnorm(y, x, gamma, beta, B, C, HW, G, eps, silu);
    op_groupnorm_fwd_stats(y2, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
    double *yd = mallocCheck(n * sizeof(double));
    for (size_t i = 0; i < n; i++) yd[i] = y[i];
    char s[64];
    snprintf(s, sizeof s, "B=%d C=%d HW=%d G=%d%s", B, C, HW, G, silu ? " silu" : "");
    check_ref("groupnorm", s, "fwd_stats y", y2, yd, n);
    op_groupnorm_backward(dx, dg, dbt, dy, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
    op_groupnorm_backward(dx2, dg2, dbt2, dy, NULL, NULL, x, gamma, beta, B, C, HW, G, eps, silu);
    int same = !memcmp(dx, dx2, n * sizeof(float)) && !memcmp(dg, dg2, C * sizeof(float)) &&
               !memcmp(dbt, dbt2, C * sizeof(float));
    report_msg(same, "groupnorm", s, "saved==recomp", "bit-identical");
    /* the formula in double, stats in double */
    double *rx = mallocCheck(n * sizeof(double)), *rg = callocCheck(C, sizeof(double));
    double *rb = callocCheck(C, sizeof(double)), stat_err = 0.0;
    size_t ng = (size_t)cg * HW;
    double *dv = mallocCheck(ng * sizeof(double)), *xh = mallocCheck(ng * sizeof(double));
    for (int bg = 0; bg < B * G; bg++) {
        const float *xg = x + bg * ng;
        double mu = 0.0, var = 0.0, a = 0.0, b = 0.0;
        for (size_t i = 0; i < ng; i++) mu += xg[i];
        mu /= (double)ng;
        for (size_t i = 0; i < ng; i++) var += (xg[i] - mu) * (xg[i] - mu);
        double r = 1.0 / sqrt(var / (double)ng + eps);
        stat_err = fmax(stat_err, fabs(mean[bg] - mu) / fabs(mu) + fabs(rstd[bg] - r) / r);
        for (size_t i = 0; i < ng; i++) {
            int ch = bg % G * cg + (int)(i / HW);
            xh[i] = (xg[i] - mu) * r;
            double v = xh[i] * gamma[ch] + beta[ch], g = dy[bg * ng + i];
            if (silu) {
                double sg = 1.0 / (1.0 + exp(-v));
                g *= sg * (1.0 + v * (1.0 - sg));
            }
            dv[i] = g;
            rb[ch] += g, rg[ch] += g * xh[i];
            a += gamma[ch] * g, b += gamma[ch] * g * xh[i];
        }
        for (size_t i = 0; i < ng; i++) {
            int ch = bg % G * cg + (int)(i / HW);
            rx[bg * ng + i] = r * (gamma[ch] * dv[i] - a / (double)ng - xh[i] * b / (double)ng);
        }
    }
    report(stat_err <= 1e-6, "groupnorm", s, "saved stats", "err %.2e", stat_err);
    check_ref("groupnorm", s, "dx vs ref", dx, rx, n);
    check_ref("groupnorm", s, "dgamma vs ref", dg, rg, C);
    check_ref("groupnorm", s, "dbeta vs ref", dbt, rb, C);
    gfree(x), gfree(gamma), gfree(beta), gfree(dy), gfree(y), gfree(y2), gfree(dx), gfree(dx2), gfree(mean);
    gfree(rstd), gfree(dg), gfree(dbt), gfree(dg2), gfree(dbt2);
    free(yd), free(rx), free(rg), free(rb), free(dv), free(xh);
}

/* LayerNorm at a transformer shape: saved vs recomputed stats and the fwd_stats forward. (Its gradient
 * formula is the GroupNorm one with one group per row, checked by FD above.) */
static void layernorm_large(int N, int D) {
    size_t n = (size_t)N * D;
    float *x = rand_buf(n, -1, 3), *gamma = rand_buf(D, 0.5f, 1.5f), *beta = rand_buf(D, -0.5f, 0.5f);
    float *dy = rand_buf(n, -1, 1), *y = gbuf(n), *y2 = gbuf(n), *dx = gbuf(n), *dx2 = gbuf(n);
    float *mean = gbuf(N), *rstd = gbuf(N), *dg = gbuf(D), *dbt = gbuf(D), *dg2 = gbuf(D), *dbt2 = gbuf(D);
    fill(dg, D, 0), fill(dbt, D, 0), fill(dg2, D, 0), fill(dbt2, D, 0);
    op_layernorm(y, x, gamma, beta, N, D, 1e-5f);
    op_layernorm_fwd_stats(y2, mean, rstd, x, gamma, beta, N, D, 1e-5f);
    double *yd = mallocCheck(n * sizeof(double));
    for (size_t i = 0; i < n; i++) yd[i] = y[i];
    char s[64];
    snprintf(s, sizeof s, "N=%d D=%d", N, D);
    check_ref("layernorm", s, "fwd_stats y", y2, yd, n);
    op_layernorm_backward(dx, dg, dbt, dy, mean, rstd, x, gamma, N, D, 1e-5f);
    op_layernorm_backward(dx2, dg2, dbt2, dy, NULL, NULL, x, gamma, N, D, 1e-5f);
    int same = !memcmp(dx, dx2, n * sizeof(float)) && !memcmp(dg, dg2, D * sizeof(float)) &&
               !memcmp(dbt, dbt2, D * sizeof(float));
    same = same && gbuf_intact(dx, n) && gbuf_intact(dg, D);
    report_msg(same, "layernorm", s, "saved==recomp", "bit-identical");
    /* dβ = Σ_rows dy (a plain column sum) pins the row-block reduction */
    double *rb = callocCheck(D, sizeof(double));
    for (size_t i = 0; i < n; i++) rb[i % D] += dy[i];
    check_ref("layernorm", s, "dbeta vs ref", dbt, rb, D);
    gfree(x), gfree(gamma), gfree(beta), gfree(dy), gfree(y), gfree(y2), gfree(dx), gfree(dx2), gfree(mean);
    gfree(rstd), gfree(dg), gfree(dbt), gfree(dg2), gfree(dbt2), free(yd), free(rb);
}

/* ---------------- timings (printed, never checked) ---------------- */

static void time_conv(int Cin, int H, int Cout) {
    size_t nx = (size_t)Cin * H * H, nw = (size_t)Cout * Cin * 9, ny = (size_t)Cout * H * H;
    float *x = rand_buf(nx, -1, 1), *w = rand_buf(nw, -0.05f, 0.05f), *dy = rand_buf(ny, -1, 1);
    float *y = gbuf(ny), *dx = gbuf(nx), *dw = gbuf(nw), *db = gbuf(Cout);
    fill(dw, nw, 0), fill(db, Cout, 0);
    double t0 = ls_time();
    op_conv2d(y, x, w, NULL, 1, Cin, H, H, Cout, 3, 1, 1, 1);
    double t1 = ls_time();
    op_conv2d_backward(dx, dw, db, dy, x, w, 1, Cin, H, H, Cout, 3, 1, 1, 1);
    double t2 = ls_time();
    op_conv2d_backward(dx, NULL, NULL, dy, x, w, 1, Cin, H, H, Cout, 3, 1, 1, 1);
    double t3 = ls_time();
    printf("time conv2d %d->%d 3x3 %dx%d: fwd %.3f s, bwd dx+dw+db %.3f s, bwd dx only (frozen) %.3f s\n",
           Cin, Cout, H, H, t1 - t0, t2 - t1, t3 - t2);
    gfree(x), gfree(w), gfree(dy), gfree(y), gfree(dx), gfree(dw), gfree(db);
}

static void time_attention(int T, int NH, int Dh) {
    size_t n = (size_t)T * NH * Dh;
    float *q = rand_buf(n, -1, 1), *k = rand_buf(n, -1, 1), *v = rand_buf(n, -1, 1), *o = gbuf(n);
    float *dq = gbuf(n), *dk = gbuf(n), *dv = gbuf(n);
    double t0 = ls_time();
    op_attention(o, q, k, v, 1, T, T, NH, Dh, 0);
    double t1 = ls_time();
    op_attention_backward(dq, dk, dv, o, q, k, v, 1, T, T, NH, Dh, 0);
    double t2 = ls_time();
    printf("time attention T=%d NH=%d Dh=%d: fwd %.3f s, bwd %.3f s\n", T, NH, Dh, t1 - t0, t2 - t1);
    gfree(q), gfree(k), gfree(v), gfree(o), gfree(dq), gfree(dk), gfree(dv);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    double t0 = ls_time();
    printf("test_grad: %d threads\n", op_num_threads());

    /* finite differences + semantics, small shapes */
    test_linear(5, 7, 3, 1);
    test_linear(1, 16, 9, 0);
    test_linear(33, 20, 70, 1); /* db's column bands: 70 = 64 + 6 */
    test_conv(2, 3, 7, 6, 4, 3, 1, 1, 1, 1);
    test_conv(1, 2, 9, 8, 3, 3, 2, 0, 1, 1); /* VAE downsample: stride 2, pad (0,1) */
    test_conv(2, 3, 6, 7, 2, 3, 2, 1, 1, 0); /* stride 2, symmetric pad, remainder column */
    test_conv(2, 5, 4, 3, 3, 1, 1, 0, 0, 1); /* 1x1: the direct path */
    test_conv(1, 2, 5, 5, 2, 3, 1, 0, 0, 1); /* no padding */
    test_conv(1, 2, 5, 6, 3, 4, 2, 2, 1, 1); /* even kernel, asymmetric pad */
    test_groupnorm(2, 6, 5, 3, 1e-5f, 0, 0);
    test_groupnorm(2, 6, 5, 3, 1e-6f, 1, 0);
    test_groupnorm(1, 8, 9, 2, 1e-5f, 1, 1);
    test_groupnorm(3, 4, 1, 4, 1e-5f, 0, 1); /* one value per group: x̂ = 0, dx = 0 */
    test_layernorm(5, 7, 0);
    test_layernorm(70, 9, 1); /* three row blocks */
    test_attention(2, 5, 5, 2, 3, 0);
    test_attention(1, 6, 6, 2, 4, 1);  /* causal */
    test_attention(2, 4, 9, 3, 2, 0);  /* cross: Tq != Tk */
    test_attention(1, 11, 3, 1, 9, 0); /* more queries than keys, odd Dh */
    for (int kind = 0; kind < 3; kind++) test_activation(kind, 301);
    test_activation(0, (size_t)1 << 16); /* the threaded loop */
    test_activation(1, ((size_t)1 << 16) + 3); /* GELU: threaded chunks, then an 8-lane tail */
    test_geglu(4, 9);
    test_geglu(3, 21); /* two 8-lane blocks and a tail of 5 */
    test_channel_bias(2, 3, 7);
    test_upsample(2, 3, 4, 5, 8, 10); /* 2x */
    test_upsample(1, 2, 3, 5, 7, 8);  /* non-integer ratios */
    test_upsample(1, 1, 2, 2, 82, 5); /* PyTorch's float rule differs from exact floor here */
    test_upsample(1, 2, 7, 6, 3, 4);  /* downsampling: some sources unused (dx = 0 there) */
    test_concat(2, 3, 5, 6);
    test_transpose(2, 5, 7, 1);
    test_transpose(2, 40, 37, 0); /* more than one 32-wide tile */
    test_frozen_without_input();

    /* larger SD-ish shapes and chunked paths vs naive double backward */
    conv_ref_large(1, 64, 16, 16, 64, 3, 1, 1, 1);
    conv_ref_large(1, 64, 16, 16, 64, 3, 2, 0, 1);  /* VAE downsample */
    conv_ref_large(2, 64, 16, 16, 32, 1, 1, 0, 0);  /* 1x1 shortcut */
    conv_ref_large(1, 1, 40, 100000, 2, 3, 1, 1, 1); /* 3 bands of output rows, overlapping input rows */
    attn_ref_large(1, 256, 256, 4, 16, 0);
    attn_ref_large(2, 256, 77, 4, 16, 0);   /* cross-attention to a 77-token context */
    attn_ref_large(1, 77, 77, 2, 32, 1);    /* CLIP-like causal */
    attn_ref_large(1, 2500, 2500, 1, 8, 1); /* causal over 6 row chunks */
    attn_ref_large(1, 64, 50000, 1, 8, 0);  /* long keys: 4 row chunks */
    attn_ref_large(2, 1100, 1000, 2, 8, 0); /* per-head tasks (B·NH >= threads), 2 row chunks, a tail */
    attn_ref_large(1, 1500, 1500, 3, 8, 1); /* the same, causal: 3 row chunks per head */
    groupnorm_ref_large(2, 320, 256, 32, 1e-5f, 1);
    groupnorm_ref_large(1, 64, 64, 32, 1e-6f, 0);
    layernorm_large(1024, 320);

    time_conv(320, 32, 320);
    time_attention(1024, 8, 40);

    printf("test_grad: %.1f s\n", ls_time() - t0);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
