/* norm_bwd.c — GroupNorm (+ fused SiLU) and LayerNorm: forward variants that save their statistics, and
 * the backward passes.
 *
 * Both norms compute, over one normalisation group of n values (a (batch, group) slice for GroupNorm, a
 * row for LayerNorm), x̂ = (x - μ)·r with r = 1/sqrt(var + eps) (biased variance), then v = x̂·γ + β per
 * channel, and for fused GroupNorm+SiLU y = silu(v) (else y = v). Backward, with dv = dy·silu'(v) (or dy):
 *   dβ_c += Σ dv over channel c's values,   dγ_c += Σ dv·x̂   (over every batch / row),
 *   dx̂ = γ·dv,   dx = r·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂))   (means over the group).
 * The dx line is the chain rule through μ and r: ∂μ/∂x_i = 1/n and ∂r/∂x_i = -r³(x_i - μ)/n, which folds
 * into the x̂·mean(dx̂·x̂) term (eps only enters through r, so the formula holds with eps).
 * Saved statistics: mean and rstd per group, as float, from the *_fwd_stats variants (B·G or N floats);
 * passing NULL makes the backward recompute them from x exactly as the forward does (two-pass, double),
 * so both routes give bit-identical gradients. The SiLU's pre-activation v is recomputed from x, never
 * stored. Group sums are accumulated in double.
 * Both run 8 lanes at a time: the GroupNorm forward with statistics is op_groupnorm_cpu itself (norm.c), the
 * LayerNorm one op_layernorm_cpu's code (norm_span.h), so y is bit-identical to theirs, and GroupNorm's backward uses v8_sigmoid for the fused SiLU. (The first
 * version was scalar with libm expf: forward-with-statistics 4.7x op_groupnorm_cpu, BENCHMARKS.md.)
 */
#include <math.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"     // defines: mallocCheck, LS_ASSERT, LS_MIN
#include "norm_span.h" // defines: norm_moments, norm_layernorm_row
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"       // defines: the ops' semantics (OpTable), op_conv2d_out
#include "vecmath.h"   // defines: v8f, v4d, v8_sigmoid, v8_widen_sum, LS_CLONES

#define LN_ROWS 32 /* LayerNorm backward: rows per task; dγ/dβ partial sums are kept per task */

/* mean and 1/sqrt(var + eps) of n floats, as norm.c computes them (two-pass, double), rounded to
 * float: the values the forward normalises with. */
static void moments_f(const float *x, size_t n, float eps, float *mean_out, float *rstd_out) {
    double mean, rstd;
    norm_moments(x, n, eps, &mean, &rstd);
    *mean_out = (float)mean;
    *rstd_out = (float)rstd;
}

/* ---------------- GroupNorm (the forward with statistics: op_groupnorm_fwd_stats_cpu, norm.c) ---------------- */

/* 8 lanes of pass 1: x̂ = (x - m)·r and dv = dy, times silu'(v) at v = x̂·γ + β when SiLU is fused */
V8_INLINE v8f gn_dv8(v8f dy, v8f x, v8f *xh, float m, float r, float g, float b, int silu) {
    *xh = (x - m) * r;
    if (!silu) return dy;
    v8f v = *xh * g + b, sg = v8_sigmoid(v); /* silu'(v) = σ(v)·(1 + v·(1 - σ(v))) */
    return dy * (sg * (1.0f + v * (1.0f - sg)));
}

/* pass 1 over one channel's n values: Σ dv and Σ dv·x̂ into s[0], s[1]; dv itself into dvo unless NULL */
LS_CLONES static void gn_bwd_sums(float *dvo, double *s, const float *dy, const float *x, int n, float m,
                                  float r, float g, float b, int silu) {
    v4d a1 = {0.0, 0.0, 0.0, 0.0}, a2 = {0.0, 0.0, 0.0, 0.0};
    v8f xh;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f dv = gn_dv8(v8_load(dy + i), v8_load(x + i), &xh, m, r, g, b, silu);
        if (dvo) v8_store(dvo + i, dv);
        a1 += v8_widen_sum(dv);
        a2 += v8_widen_sum(dv * xh);
    }
    if (i < n) { /* padding lanes: dy = 0, so dv = 0 and they add nothing */
        int rem = n - i;
        v8f dv = gn_dv8(v8_load_part(dy + i, rem, 0.0f), v8_load_part(x + i, rem, 0.0f), &xh, m, r, g, b,
                        silu);
        if (dvo) v8_store_part(dvo + i, dv, rem);
        a1 += v8_widen_sum(dv);
        a2 += v8_widen_sum(dv * xh);
    }
    s[0] = (a1[0] + a1[1]) + (a1[2] + a1[3]);
    s[1] = (a2[0] + a2[1]) + (a2[2] + a2[3]);
}

/* pass 2 over one channel: dx = r·(γ·dv - ma - x̂·mb); dx may be dv */
LS_CLONES static void gn_bwd_dx(float *dx, const float *dv, const float *x, int n, float m, float r, float g,
                                float ma, float mb) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        v8_store(dx + i, r * (g * v8_load(dv + i) - ma - (v8_load(x + i) - m) * r * mb));
    if (i < n) {
        int rem = n - i;
        v8f xh = (v8_load_part(x + i, rem, 0.0f) - m) * r;
        v8_store_part(dx + i, r * (g * v8_load_part(dv + i, rem, 0.0f) - ma - xh * mb), rem);
    }
}

void op_groupnorm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                           const float *rstd, const float *x, const float *gamma, const float *beta, int B,
                           int C, int HW, int G, float eps, int silu) {
    LS_ASSERT(G > 0 && C % G == 0);
    if (!dx && !dgamma && !dbeta) return;
    int cg = C / G;
    double n = (double)cg * HW;
    /* per (batch, channel): Σ dv and Σ dv·x̂ — the parameter grads' terms and the group means' parts */
    double *sums = pool_alloc((size_t)B * C * 2 * sizeof(double));

#pragma omp parallel for schedule(dynamic, 1)
    for (int bg = 0; bg < B * G; bg++) {
        int bi = bg / G, g = bg % G;
        size_t off = (size_t)bg * cg * HW;
        float m, r;
        if (mean && rstd) m = mean[bg], r = rstd[bg];
        else moments_f(x + off, (size_t)cg * HW, eps, &m, &r);
        double *sg = sums + ((size_t)bi * C + (size_t)g * cg) * 2; /* this group's channels' sums */
        /* pass 1: dv (kept in dx when SiLU is fused, so pass 2 needs no second exp) and the sums */
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            size_t o = off + (size_t)j * HW;
            gn_bwd_sums(dx && silu ? dx + o : NULL, sg + 2 * j, dy + o, x + o, HW, m, r, gamma[c], beta[c],
                        silu);
        }
        if (!dx) continue;
        /* pass 2: dx = r·(γ·dv - mean(dx̂) - x̂·mean(dx̂·x̂)) */
        double a = 0.0, b = 0.0;
        for (int j = 0; j < cg; j++) {
            a += gamma[g * cg + j] * sg[2 * j];
            b += gamma[g * cg + j] * sg[2 * j + 1];
        }
        float ma = (float)(a / n), mb = (float)(b / n);
        for (int j = 0; j < cg; j++) {
            size_t o = off + (size_t)j * HW;
            gn_bwd_dx(dx + o, silu ? dx + o : dy + o, x + o, HW, m, r, gamma[g * cg + j], ma, mb);
        }
    }
    /* parameter grads: sum the per-batch sums in batch order (deterministic for any thread count) */
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int bi = 0; bi < B; bi++) {
            const double *sc = sums + ((size_t)bi * C + c) * 2;
            s1 += sc[0], s2 += sc[1];
        }
        if (dbeta) dbeta[c] += (float)s1;
        if (dgamma) dgamma[c] += (float)s2;
    }
    pool_free(sums);
}

/* ---------------- LayerNorm ---------------- */

void op_layernorm_fwd_stats_cpu(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                            const float *beta, int N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int row = 0; row < N; row++) {
        const float *xr = x + (size_t)row * D;
        float *yr = y + (size_t)row * D, m, r;
        moments_f(xr, (size_t)D, eps, &m, &r);
        mean[row] = m;
        rstd[row] = r;
        norm_layernorm_row(yr, xr, gamma, beta, D, m, r);
    }
}

/* p[0..8) += v, widened to double */
V8_INLINE void add_widened(double *p, v8f v) {
    v4d lo, hi;
    memcpy(&lo, p, sizeof lo), memcpy(&hi, p + 4, sizeof hi);
    lo += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), v4d);
    hi += __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), v4d);
    memcpy(p, &lo, sizeof lo), memcpy(p + 4, &hi, sizeof hi);
}

/* one row, pass 1: Σ dx̂ and Σ dx̂·x̂ (dx̂ = dy·γ, x̂ = (x - m)·r) into s[0], s[1]; per feature, p1 += dy
 * and p2 += dy·x̂ unless p1 is NULL */
LS_CLONES static void ln_bwd_sums(double *s, double *p1, double *p2, const float *dy, const float *x,
                                  const float *gamma, int D, float m, float r) {
    v4d a = {0.0, 0.0, 0.0, 0.0}, b = {0.0, 0.0, 0.0, 0.0};
    int i = 0;
    for (; i + 8 <= D; i += 8) {
        v8f d = v8_load(dy + i), xh = (v8_load(x + i) - m) * r, dxh = d * v8_load(gamma + i);
        a += v8_widen_sum(dxh);
        b += v8_widen_sum(dxh * xh);
        if (p1) add_widened(p1 + i, d), add_widened(p2 + i, d * xh);
    }
    double sa = (a[0] + a[1]) + (a[2] + a[3]), sb = (b[0] + b[1]) + (b[2] + b[3]);
    for (; i < D; i++) {
        float xh = (x[i] - m) * r, dxh = dy[i] * gamma[i];
        sa += dxh;
        sb += (double)(dxh * xh);
        if (p1) p1[i] += dy[i], p2[i] += (double)(dy[i] * xh);
    }
    s[0] = sa, s[1] = sb;
}

/* one row, pass 2: dx = r·(dy·γ - ma - x̂·mb) */
LS_CLONES static void ln_bwd_dx(float *dx, const float *dy, const float *x, const float *gamma, int D,
                                float m, float r, float ma, float mb) {
    int i = 0;
    for (; i + 8 <= D; i += 8)
        v8_store(dx + i, r * (v8_load(dy + i) * v8_load(gamma + i) - ma - (v8_load(x + i) - m) * r * mb));
    for (; i < D; i++) dx[i] = r * (dy[i] * gamma[i] - ma - (x[i] - m) * r * mb);
}

void op_layernorm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                           const float *rstd, const float *x, const float *gamma, int N, int D, float eps) {
    if (!dx && !dgamma && !dbeta) return;
    int want_params = dgamma || dbeta;
    int ntask = (N + LN_ROWS - 1) / LN_ROWS;
    /* per task of LN_ROWS rows: partial Σ dy and Σ dy·x̂ per feature, reduced in task order below */
    double *part = want_params ? pool_alloc((size_t)ntask * 2 * D * sizeof(double)) : NULL;

#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntask; t++) {
        double *p1 = part ? part + (size_t)t * 2 * D : NULL, *p2 = p1 ? p1 + D : NULL;
        if (p1) memset(p1, 0, 2 * (size_t)D * sizeof(double));
        for (int row = t * LN_ROWS; row < LS_MIN(N, (t + 1) * LN_ROWS); row++) {
            const float *xr = x + (size_t)row * D, *dyr = dy + (size_t)row * D;
            float m, r;
            if (mean && rstd) m = mean[row], r = rstd[row];
            else moments_f(xr, (size_t)D, eps, &m, &r);
            double sums[2]; /* Σ dx̂ and Σ dx̂·x̂ over the row */
            ln_bwd_sums(sums, p1, p2, dyr, xr, gamma, D, m, r);
            if (dx)
                ln_bwd_dx(dx + (size_t)row * D, dyr, xr, gamma, D, m, r, (float)(sums[0] / D),
                          (float)(sums[1] / D));
        }
    }
    if (part) {
#pragma omp parallel for schedule(static) if ((size_t)ntask * D >= ((size_t)1 << 15))
        for (int i = 0; i < D; i++) {
            double s1 = 0.0, s2 = 0.0;
            for (int t = 0; t < ntask; t++) {
                s1 += part[(size_t)t * 2 * D + i];
                s2 += part[(size_t)t * 2 * D + D + i];
            }
            if (dbeta) dbeta[i] += (float)s1;
            if (dgamma) dgamma[i] += (float)s2;
        }
        pool_free(part);
    }
}
