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
 */
#include <math.h>
#include <string.h>

#include "common.h" // defines: mallocCheck, LS_ASSERT, LS_MIN
#include "ops.h"    // defines: the norm prototypes

#define LN_ROWS 32 /* LayerNorm backward: rows per task; dγ/dβ partial sums are kept per task */

/* mean and 1/sqrt(var + eps) of n floats (biased variance), two-pass in double as in norm.c, then
 * rounded to float: the values the forward normalises with. */
static void moments_f(const float *x, size_t n, float eps, float *mean_out, float *rstd_out) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    double mean = sum / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    *mean_out = (float)mean;
    *rstd_out = (float)(1.0 / sqrt(ss / (double)n + eps));
}

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* ---------------- GroupNorm ---------------- */

void op_groupnorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                            const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    LS_ASSERT(G > 0 && C % G == 0);
    int cg = C / G; /* channels per group; a group is cg*HW contiguous values */
#pragma omp parallel for schedule(dynamic, 1)
    for (int bg = 0; bg < B * G; bg++) {
        int g = bg % G;
        size_t off = (size_t)bg * cg * HW;
        float m, r;
        moments_f(x + off, (size_t)cg * HW, eps, &m, &r);
        mean[bg] = m;
        rstd[bg] = r;
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            float s = r * gamma[c], t = beta[c];
            const float *xc = x + off + (size_t)j * HW;
            float *yc = y + off + (size_t)j * HW;
            for (int i = 0; i < HW; i++) {
                float v = (xc[i] - m) * s + t;
                yc[i] = silu ? v * sigmoidf(v) : v;
            }
        }
    }
}

void op_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                           const float *rstd, const float *x, const float *gamma, const float *beta, int B,
                           int C, int HW, int G, float eps, int silu) {
    LS_ASSERT(G > 0 && C % G == 0);
    if (!dx && !dgamma && !dbeta) return;
    int cg = C / G;
    double n = (double)cg * HW;
    /* per (batch, channel): Σ dv and Σ dv·x̂ — the parameter grads' terms and the group means' parts */
    double *sdv = mallocCheck((size_t)B * C * sizeof(double));
    double *sdvx = mallocCheck((size_t)B * C * sizeof(double));

#pragma omp parallel for schedule(dynamic, 1)
    for (int bg = 0; bg < B * G; bg++) {
        int bi = bg / G, g = bg % G;
        size_t off = (size_t)bg * cg * HW;
        float m, r;
        if (mean && rstd) m = mean[bg], r = rstd[bg];
        else moments_f(x + off, (size_t)cg * HW, eps, &m, &r);
        /* pass 1: dv (kept in dx when SiLU is fused, so pass 2 needs no second exp) and the sums */
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            const float *xc = x + off + (size_t)j * HW, *dyc = dy + off + (size_t)j * HW;
            float *dvc = dx && silu ? dx + off + (size_t)j * HW : NULL;
            double s1 = 0.0, s2 = 0.0;
            for (int i = 0; i < HW; i++) {
                float xh = (xc[i] - m) * r, dv = dyc[i];
                if (silu) { /* silu'(v) = σ(v)·(1 + v·(1 - σ(v))) */
                    float v = xh * gamma[c] + beta[c], sg = sigmoidf(v);
                    dv *= sg * (1.0f + v * (1.0f - sg));
                    if (dvc) dvc[i] = dv;
                }
                s1 += dv;
                s2 += (double)dv * xh;
            }
            sdv[(size_t)bi * C + c] = s1;
            sdvx[(size_t)bi * C + c] = s2;
        }
        if (!dx) continue;
        /* pass 2: dx = r·(γ·dv - mean(dx̂) - x̂·mean(dx̂·x̂)) */
        double a = 0.0, b = 0.0;
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            a += gamma[c] * sdv[(size_t)bi * C + c];
            b += gamma[c] * sdvx[(size_t)bi * C + c];
        }
        float ma = (float)(a / n), mb = (float)(b / n);
        for (int j = 0; j < cg; j++) {
            int c = g * cg + j;
            const float *xc = x + off + (size_t)j * HW;
            const float *dvc = silu ? dx + off + (size_t)j * HW : dy + off + (size_t)j * HW;
            float *dxc = dx + off + (size_t)j * HW;
            for (int i = 0; i < HW; i++) {
                float xh = (xc[i] - m) * r;
                dxc[i] = r * (gamma[c] * dvc[i] - ma - xh * mb);
            }
        }
    }
    /* parameter grads: sum the per-batch sums in batch order (deterministic for any thread count) */
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int bi = 0; bi < B; bi++) s1 += sdv[(size_t)bi * C + c], s2 += sdvx[(size_t)bi * C + c];
        if (dbeta) dbeta[c] += (float)s1;
        if (dgamma) dgamma[c] += (float)s2;
    }
    free(sdv);
    free(sdvx);
}

/* ---------------- LayerNorm ---------------- */

void op_layernorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                            const float *beta, int N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int row = 0; row < N; row++) {
        const float *xr = x + (size_t)row * D;
        float *yr = y + (size_t)row * D, m, r;
        moments_f(xr, (size_t)D, eps, &m, &r);
        mean[row] = m;
        rstd[row] = r;
        for (int i = 0; i < D; i++) yr[i] = (xr[i] - m) * r * gamma[i] + beta[i];
    }
}

void op_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                           const float *rstd, const float *x, const float *gamma, int N, int D, float eps) {
    if (!dx && !dgamma && !dbeta) return;
    int want_params = dgamma || dbeta;
    int ntask = (N + LN_ROWS - 1) / LN_ROWS;
    /* per task of LN_ROWS rows: partial Σ dy and Σ dy·x̂ per feature, reduced in task order below */
    double *part = want_params ? mallocCheck((size_t)ntask * 2 * D * sizeof(double)) : NULL;

#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntask; t++) {
        double *p1 = part ? part + (size_t)t * 2 * D : NULL, *p2 = p1 ? p1 + D : NULL;
        if (p1) memset(p1, 0, 2 * (size_t)D * sizeof(double));
        for (int row = t * LN_ROWS; row < LS_MIN(N, (t + 1) * LN_ROWS); row++) {
            const float *xr = x + (size_t)row * D, *dyr = dy + (size_t)row * D;
            float m, r;
            if (mean && rstd) m = mean[row], r = rstd[row];
            else moments_f(xr, (size_t)D, eps, &m, &r);
            double a = 0.0, b = 0.0; /* Σ dx̂ and Σ dx̂·x̂ over the row */
            for (int i = 0; i < D; i++) {
                float xh = (xr[i] - m) * r, dxh = dyr[i] * gamma[i];
                a += dxh;
                b += (double)dxh * xh;
                if (p1) p1[i] += dyr[i], p2[i] += (double)dyr[i] * xh;
            }
            if (!dx) continue;
            float ma = (float)(a / D), mb = (float)(b / D);
            float *dxr = dx + (size_t)row * D;
            for (int i = 0; i < D; i++) {
                float xh = (xr[i] - m) * r;
                dxr[i] = r * (dyr[i] * gamma[i] - ma - xh * mb);
            }
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
        free(part);
    }
}
