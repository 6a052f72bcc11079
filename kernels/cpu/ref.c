/* ref.c — plain reference versions (suffix _ref) of the ops in ops.h: the test oracle.
 *
 * Naive loops, no BLAS, no threads, sums accumulated in double. Speed does not matter here; each function
 * should be checkable by eye against the PyTorch module named in its comment. Shapes follow ops.h.
 */
#include <math.h>
#include <string.h>

#include "kbase.h"  // defines: mallocCheck, LS_ASSERT
#include "cpu.h"    // defines: op_alloc_cpu, op_free_cpu, op_sync_cpu (the references run on CPU memory)
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out

/* == torch.nn.Linear: y[m,n] = sum_k x[m,k] * w[n,k] + b[n] */
void op_linear_ref(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double acc = b ? b[n] : 0.0;
            for (int k = 0; k < K; k++) acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
            y[(size_t)m * N + n] = (float)acc;
        }
    }
}

/* == torch.nn.Conv2d (zero padding, pad0 top/left, pad1 bottom/right) as a direct 7-deep loop. */
void op_conv2d_ref(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H,
                   int W, int Cout, int k, int stride, int pad0, int pad1) {
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    for (int bi = 0; bi < B; bi++) {
        for (int co = 0; co < Cout; co++) {
            for (int oh = 0; oh < Ho; oh++) {
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < Cin; ci++) {
                        const float *xp = x + ((size_t)bi * Cin + ci) * H * W;
                        const float *wp = w + ((size_t)co * Cin + ci) * k * k;
                        for (int kh = 0; kh < k; kh++) {
                            int ih = oh * stride - pad0 + kh;
                            if (ih < 0 || ih >= H) continue; /* zero padding */
                            for (int kw = 0; kw < k; kw++) {
                                int iw = ow * stride - pad0 + kw;
                                if (iw < 0 || iw >= W) continue;
                                acc += (double)xp[(size_t)ih * W + iw] * wp[kh * k + kw];
                            }
                        }
                    }
                    y[(((size_t)bi * Cout + co) * Ho + oh) * Wo + ow] = (float)acc;
                }
            }
        }
    }
}

/* == torch.nn.GroupNorm (+ optional silu). Stats per (batch, group) over (C/G)*HW values, biased variance. */
void op_groupnorm_ref(float *y, const float *x, const float *gamma, const float *beta, int B, int C,
                      int HW, int G, float eps, int silu) {
    LS_ASSERT(C % G == 0);
    int cg = C / G; /* channels per group */
    size_t n = (size_t)cg * HW;
    for (int bi = 0; bi < B; bi++) {
        for (int g = 0; g < G; g++) {
            size_t off = ((size_t)bi * C + (size_t)g * cg) * HW; /* the group is contiguous */
            double mean = 0.0, var = 0.0;
            for (size_t i = 0; i < n; i++) mean += x[off + i];
            mean /= (double)n;
            for (size_t i = 0; i < n; i++) var += (x[off + i] - mean) * (x[off + i] - mean);
            var /= (double)n;
            double rstd = 1.0 / sqrt(var + eps);
            for (int c = g * cg; c < (g + 1) * cg; c++) {
                for (int i = 0; i < HW; i++) {
                    size_t idx = ((size_t)bi * C + c) * HW + i;
                    double v = (x[idx] - mean) * rstd * gamma[c] + beta[c];
                    if (silu) v = v / (1.0 + exp(-v));
                    y[idx] = (float)v;
                }
            }
        }
    }
}

/* == torch.nn.LayerNorm(D): per row, biased variance. */
void op_layernorm_ref(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                      float eps) {
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < D; i++) mean += xr[i];
        mean /= D;
        for (int i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= D;
        double rstd = 1.0 / sqrt(var + eps);
        for (int i = 0; i < D; i++) y[(size_t)r * D + i] = (float)((xr[i] - mean) * rstd * gamma[i] + beta[i]);
    }
}

/* == F.scaled_dot_product_attention per head: softmax(q kᵀ / sqrt(Dh) [+ causal mask]) v.
 * One row of scores (Tk doubles) at a time. */
void op_attention_ref(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                      int NH, int Dh, int causal) {
    LS_ASSERT(!causal || Tq == Tk);
    int C = NH * Dh; /* row stride of q, k, v, out */
    double scale = 1.0 / sqrt((double)Dh);
    double *s = mallocCheck((size_t)Tk * sizeof(double)); /* (Tk) scores of one query row */
    for (int bi = 0; bi < B; bi++) {
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)bi * Tq + i) * C + h * Dh;
                int nk = causal ? i + 1 : Tk; /* keys j > i are masked out */
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < nk; j++) {
                    const float *kj = k + ((size_t)bi * Tk + j) * C + h * Dh;
                    double dot = 0.0;
                    for (int d = 0; d < Dh; d++) dot += (double)qi[d] * kj[d];
                    s[j] = dot * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < nk; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                float *oi = out + ((size_t)bi * Tq + i) * C + h * Dh;
                for (int d = 0; d < Dh; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < nk; j++) acc += s[j] * v[((size_t)bi * Tk + j) * C + h * Dh + d];
                    oi[d] = (float)(acc / sum);
                }
            }
        }
    }
    free(s);
}

/* == diffusers GEGLU after its proj: hidden, gate = x.chunk(2, -1); y = hidden * gelu(gate) (exact erf). */
void op_geglu_ref(float *y, const float *x, int N, int D) {
    for (int r = 0; r < N; r++) {
        for (int d = 0; d < D; d++) {
            double a = x[(size_t)r * 2 * D + d], g = x[(size_t)r * 2 * D + D + d];
            y[(size_t)r * D + d] = (float)(a * 0.5 * g * (1.0 + erf(g / sqrt(2.0))));
        }
    }
}

/* == F.interpolate(mode="nearest", size=(Ho,Wo)). PyTorch computes the source index in float:
 * src = min(floor(dst * (float)(in/out)), in-1), which for a few non-integer ratios differs from the exact
 * floor(dst*in/out) (e.g. in=2, out=82, dst=41 → 0, not 1). We follow PyTorch for parity. */
static int nearest_src_ref(int dst, int in, int out) {
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void op_upsample_nearest_ref(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo) {
    for (size_t p = 0; p < (size_t)B * C; p++) { /* one (H,W) plane per (batch, channel) */
        for (int oh = 0; oh < Ho; oh++) {
            for (int ow = 0; ow < Wo; ow++) {
                int ih = nearest_src_ref(oh, H, Ho), iw = nearest_src_ref(ow, W, Wo);
                y[(p * Ho + oh) * Wo + ow] = x[(p * H + ih) * W + iw];
            }
        }
    }
}

/* ---- between layers: the plain loops, one thread, index order ---- */

void op_embedding_ref(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D) {
    for (int t = 0; t < B * L; t++)
        for (int d = 0; d < D; d++) y[(size_t)t * D + d] = tok[(size_t)ids[t] * D + d] + pos[(size_t)(t % L) * D + d];
}

void op_cfg_combine_ref(float *eps, const float *cond, float g, size_t n) {
    for (size_t j = 0; j < n; j++) eps[j] = eps[j] + g * (cond[j] - eps[j]);
}

void op_axpy_ref(float *y, float a, const float *x, size_t n) {
    for (size_t j = 0; j < n; j++) y[j] += a * x[j];
}

double op_mse_loss_ref(float *dout, const float *out, const float *target, const float *w, size_t hw, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - (double)target[i], wi = w ? (double)w[i % hw] : 1.0;
        sum += wi * d * d;
        if (dout) dout[i] = (float)(2.0 * wi * d / (double)n);
    }
    return sum / (double)n;
}

double op_sum_squares_ref(const float *x, size_t n) {
    double a = 0.0;
    for (size_t j = 0; j < n; j++) a += (double)x[j] * x[j];
    return a;
}

void op_adamw_ref(float *p, const float *g, float *m, float *v, size_t n, const AdamwArgs *a) {
    for (size_t j = 0; j < n; j++) { /* Loshchilov & Hutter, Algorithm 2, with bias-corrected moments */
        double gj = (double)g[j] * a->gscale;
        double mj = a->beta1 * m[j] + (1.0 - a->beta1) * gj, vj = a->beta2 * v[j] + (1.0 - a->beta2) * gj * gj;
        double mhat = mj / a->bc1, vhat = vj / a->bc2;
        p[j] = (float)(p[j] - a->lr * a->weight_decay * p[j] - a->lr * mhat / (sqrt(vhat) + a->eps));
        m[j] = (float)mj, v[j] = (float)vj;
    }
}

/* ---- sampling: the formulas of SamplerStepArgs, in diffusers' operation order ---- */

void op_sampler_step_ref(const SamplerStepArgs *a, float *x, float *prev, const float *mo, const float *noise,
                         size_t n) {
    for (size_t j = 0; j < n; j++) {
        if (a->family == OP_STEP_DDIM) {
            float x0 = a->v ? a->sa * x[j] - a->sb * mo[j] : (x[j] - a->sb * mo[j]) / a->sa;
            float e = a->v ? a->sa * mo[j] + a->sb * x[j] : mo[j];
            x[j] = a->sa_prev * x0 + a->dir * e;
        } else if (a->family == OP_STEP_EULER) {
            float x0 = a->v ? mo[j] * a->cv + x[j] / a->s2p1 : x[j] - a->sigma * mo[j];
            float d = (x[j] - x0) / a->sigma;
            float xn = x[j] + d * a->dt;
            if (noise) xn = xn + noise[j] * a->sigma_up;
            x[j] = xn;
        } else {
            float D = a->v ? a->alpha * x[j] - a->sigma * mo[j] : (x[j] - a->sigma * mo[j]) / a->alpha;
            if (a->final) x[j] = D;
            else if (a->second) x[j] = a->cx * x[j] - a->cd * D - a->cd1 * (a->inv_r0 * (D - prev[j]));
            else x[j] = a->cx * x[j] - a->cd * D;
            prev[j] = D;
        }
    }
}

void op_scale_ref(float *y, const float *x, float s, size_t n) {
    for (size_t j = 0; j < n; j++) y[j] = x[j] * s;
}

void op_divide_ref(float *y, const float *x, float d, size_t n) {
    for (size_t j = 0; j < n; j++) y[j] = x[j] / d;
}

/* The references as an op table (forward ops; the rest are checked by finite differences). */
const OpTable op_table_ref = {
    .name = "ref",
    .host_memory = 1,
    .alloc = op_alloc_cpu,
    .free = op_free_cpu,
    .sync = op_sync_cpu,
    .linear = op_linear_ref,
    .conv2d = op_conv2d_ref,
    .groupnorm = op_groupnorm_ref,
    .layernorm = op_layernorm_ref,
    .attention = op_attention_ref,
    .geglu = op_geglu_ref,
    .upsample_nearest = op_upsample_nearest_ref,
    .gemm = op_gemm_ref,
};
