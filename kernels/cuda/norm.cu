/* norm.cu — GroupNorm (+ fused SiLU) and LayerNorm: forward, forward saving the statistics, backward.
 *
 * The maths, the float/double split and the operation order follow kernels/cpu/norm.c and norm_bwd.c (their
 * header comments derive the backward): statistics two-pass (mean, then the mean of squared deviations) in
 * double; y = (x - mean)·(rstd·γ) + β in float; backward dx = r·(γ·dv - mean(γ·dv) - x̂·mean(γ·dv·x̂)) with the
 * group sums in double. Only the summation order differs from the CPU's (block and warp trees), so results
 * agree to float rounding.
 *
 * GroupNorm: one block per (batch, group) — a group is (C/G)·HW contiguous values. SD1.5 has 32 groups, so
 * one image fills 32 of the H200's 132 multiprocessors; splitting a group's sums over several blocks is the
 * next step for speed. LayerNorm: one warp per row. Parameter gradients are summed per block into scratch
 * and then over blocks in block order (no atomics), so every result is the same bits on every run.
 */
#include <math.h>

#include "cuda_base.cuh" // defines: LAUNCH, cuda_op, block_sum, warp_sum, cuda_scratch

#define GN_THREADS 512
#define LN_ROWS 32 /* LayerNorm backward: rows per block; dγ/dβ partial sums are kept per block */

__device__ inline float sigmoidf_(float x) {
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* mean and 1/sqrt(var + eps) of the n values at x (biased variance), two-pass in double, over the block */
__device__ inline void block_moments(const float *x, size_t n, float eps, double *mean, double *rstd) {
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    double m = block_sum(s) / (double)n, q = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        double d = x[i] - m;
        q += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(block_sum(q) / (double)n + eps);
}

/* ---------------- GroupNorm ---------------- */

__global__ void gn_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int C, int HW, int G, float eps, int silu) {
    int bg = blockIdx.x, g = bg % G, cg = C / G;
    size_t n = (size_t)cg * HW, off = (size_t)bg * n;
    double m, r;
    block_moments(x + off, n, eps, &m, &r);
    if (mean && threadIdx.x == 0) mean[bg] = (float)m, rstd[bg] = (float)r;
    float mf = (float)m;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        int c = g * cg + (int)(i / HW);
        float v = (x[off + i] - mf) * (float)(r * gamma[c]) + beta[c];
        y[off + i] = silu ? v * sigmoidf_(v) : v;
    }
}

static void groupnorm(const char *name, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                      const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    cuda_op(name, "B C HW G silu", B, C, HW, G, silu);
    LS_ASSERT(G > 0 && C % G == 0);
    if (B > 0 && HW > 0) LAUNCH(gn_fwd, B * G, GN_THREADS, y, mean, rstd, x, gamma, beta, C, HW, G, eps, silu);
}

extern "C" void op_groupnorm_cuda(float *y, const float *x, const float *gamma, const float *beta, int B, int C,
                                  int HW, int G, float eps, int silu) {
    groupnorm("groupnorm", y, NULL, NULL, x, gamma, beta, B, C, HW, G, eps, silu);
}

extern "C" void op_groupnorm_fwd_stats_cuda(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                            const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    groupnorm("groupnorm_fwd_stats", y, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
}

/* dv = dy, times silu'(v) at v = x̂·γ + β when SiLU is fused (x̂ = (x - m)·r) */
__device__ inline float gn_dv(float dy, float xh, float g, float b, int silu) {
    if (!silu) return dy;
    float v = xh * g + b, s = sigmoidf_(v);
    return dy * (s * (1.0f + v * (1.0f - s)));
}

/* One block per (b, g). sums (B, C, 2): per channel Σ dv and Σ dv·x̂ (one warp per channel), then, if dx, dx. */
__global__ void gn_bwd(float *dx, double *sums, const float *dy, const float *mean, const float *rstd, const float *x,
                       const float *gamma, const float *beta, int C, int HW, int G, float eps, int silu) {
    int bg = blockIdx.x, b = bg / G, g = bg % G, cg = C / G;
    size_t n = (size_t)cg * HW, off = (size_t)bg * n;
    float m, r;
    if (mean && rstd) {
        m = mean[bg], r = rstd[bg];
    } else { /* as the forward computes them, rounded to float */
        double md, rd;
        block_moments(x + off, n, eps, &md, &rd);
        m = (float)md, r = (float)rd;
    }
    int lane = threadIdx.x % 32, wp = threadIdx.x / 32, nw = blockDim.x / 32;
    double *sg = sums + ((size_t)b * C + (size_t)g * cg) * 2; /* this group's channels */
    for (int j = wp; j < cg; j += nw) {
        int c = g * cg + j;
        const float *xc = x + off + (size_t)j * HW, *dyc = dy + off + (size_t)j * HW;
        double s1 = 0.0, s2 = 0.0;
        for (int i = lane; i < HW; i += 32) {
            float xh = (xc[i] - m) * r, dv = gn_dv(dyc[i], xh, gamma[c], beta[c], silu);
            s1 += dv;
            s2 += dv * xh;
        }
        s1 = warp_sum(s1), s2 = warp_sum(s2);
        if (lane == 0) sg[2 * j] = s1, sg[2 * j + 1] = s2;
    }
    if (!dx) return;
    __syncthreads(); /* the channel sums are in global memory, visible to the block after the barrier */
    double a = 0.0, bb = 0.0;
    for (int j = 0; j < cg; j++) a += gamma[g * cg + j] * sg[2 * j], bb += gamma[g * cg + j] * sg[2 * j + 1];
    float ma = (float)(a / (double)n), mb = (float)(bb / (double)n);
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        int c = g * cg + (int)(i / HW);
        float xv = x[off + i], xh = (xv - m) * r, dv = gn_dv(dy[off + i], xh, gamma[c], beta[c], silu);
        dx[off + i] = r * (gamma[c] * dv - ma - (xv - m) * r * mb);
    }
}

/* dγ[c] += Σ_b sums[b,c,1], dβ[c] += Σ_b sums[b,c,0], in batch order */
__global__ void gn_params(float *dgamma, float *dbeta, const double *sums, int B, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s1 = 0.0, s2 = 0.0;
    for (int b = 0; b < B; b++) s1 += sums[((size_t)b * C + c) * 2], s2 += sums[((size_t)b * C + c) * 2 + 1];
    if (dbeta) dbeta[c] += (float)s1;
    if (dgamma) dgamma[c] += (float)s2;
}

extern "C" void op_groupnorm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy,
                                           const float *mean, const float *rstd, const float *x, const float *gamma,
                                           const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    cuda_op("groupnorm_backward", "B C HW G silu dx dgamma dbeta", B, C, HW, G, silu, dx != NULL, dgamma != NULL,
            dbeta != NULL);
    LS_ASSERT(G > 0 && C % G == 0);
    if ((!dx && !dgamma && !dbeta) || B <= 0 || HW <= 0) return;
    double *sums = (double *)cuda_scratch((size_t)B * C * 2 * sizeof(double));
    LAUNCH(gn_bwd, B * G, GN_THREADS, dx, sums, dy, mean, rstd, x, gamma, beta, C, HW, G, eps, silu);
    if (dgamma || dbeta) LAUNCH(gn_params, (C + 255) / 256, 256, dgamma, dbeta, sums, B, C);
    cuda_scratch_free(sums);
}

/* ---------------- LayerNorm ---------------- */

/* mean and 1/sqrt(var + eps) of one row of D values, two-pass in double, over the warp */
__device__ inline void warp_moments(const float *x, int D, float eps, double *mean, double *rstd) {
    int lane = threadIdx.x % 32;
    double s = 0.0;
    for (int i = lane; i < D; i += 32) s += x[i];
    double m = warp_sum(s) / D, q = 0.0;
    for (int i = lane; i < D; i += 32) {
        double d = x[i] - m;
        q += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(warp_sum(q) / D + eps);
}

/* one warp per row, 8 rows per block */
__global__ void ln_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int N, int D, float eps) {
    int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *xr = x + (size_t)row * D;
    double md, rd;
    warp_moments(xr, D, eps, &md, &rd);
    float m = (float)md, r = (float)rd;
    if (mean && lane == 0) mean[row] = m, rstd[row] = r;
    for (int i = lane; i < D; i += 32) y[(size_t)row * D + i] = (xr[i] - m) * r * gamma[i] + beta[i];
}

static void layernorm(const char *name, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                      const float *beta, int N, int D, float eps) {
    cuda_op(name, "N D", N, D);
    if (N > 0 && D > 0) LAUNCH(ln_fwd, (N + 7) / 8, 256, y, mean, rstd, x, gamma, beta, N, D, eps);
}

extern "C" void op_layernorm_cuda(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                                  float eps) {
    layernorm("layernorm", y, NULL, NULL, x, gamma, beta, N, D, eps);
}

extern "C" void op_layernorm_fwd_stats_cuda(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                            const float *beta, int N, int D, float eps) {
    layernorm("layernorm_fwd_stats", y, mean, rstd, x, gamma, beta, N, D, eps);
}

/* One block per LN_ROWS rows (8 warps, a warp per row in turn): dx, then, if part, this block's Σ dy and
 * Σ dy·x̂ per feature into part (2, D). */
__global__ void ln_bwd(float *dx, double *part, const float *dy, const float *mean, const float *rstd,
                       const float *x, const float *gamma, int N, int D, float eps) {
    __shared__ float ms[LN_ROWS], rs[LN_ROWS];
    int r0 = blockIdx.x * LN_ROWS, lane = threadIdx.x % 32, wp = threadIdx.x / 32;
    int nrows = N - r0 < LN_ROWS ? N - r0 : LN_ROWS;
    for (int t = wp; t < nrows; t += blockDim.x / 32) {
        int row = r0 + t;
        const float *xr = x + (size_t)row * D, *dyr = dy + (size_t)row * D;
        float m, r;
        if (mean && rstd) {
            m = mean[row], r = rstd[row];
        } else {
            double md, rd;
            warp_moments(xr, D, eps, &md, &rd);
            m = (float)md, r = (float)rd;
        }
        if (lane == 0) ms[t] = m, rs[t] = r;
        if (!dx) continue;
        double sa = 0.0, sb = 0.0; /* Σ dx̂ and Σ dx̂·x̂, dx̂ = dy·γ */
        for (int i = lane; i < D; i += 32) {
            float xh = (xr[i] - m) * r, dxh = dyr[i] * gamma[i];
            sa += dxh;
            sb += (double)(dxh * xh);
        }
        float ma = (float)(warp_sum(sa) / D), mb = (float)(warp_sum(sb) / D);
        for (int i = lane; i < D; i += 32)
            dx[(size_t)row * D + i] = r * (dyr[i] * gamma[i] - ma - (xr[i] - m) * r * mb);
    }
    if (!part) return;
    __syncthreads();
    double *p = part + (size_t)blockIdx.x * 2 * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        double s1 = 0.0, s2 = 0.0;
        for (int t = 0; t < nrows; t++) {
            size_t o = (size_t)(r0 + t) * D + i;
            float d = dy[o], xh = (x[o] - ms[t]) * rs[t];
            s1 += d;
            s2 += (double)(d * xh);
        }
        p[i] = s1, p[D + i] = s2;
    }
}

/* dβ[i] += Σ_blocks part[.,0,i], dγ[i] += Σ_blocks part[.,1,i], in block order */
__global__ void ln_params(float *dgamma, float *dbeta, const double *part, int nblk, int D) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D) return;
    double s1 = 0.0, s2 = 0.0;
    for (int t = 0; t < nblk; t++) s1 += part[(size_t)t * 2 * D + i], s2 += part[(size_t)t * 2 * D + D + i];
    if (dbeta) dbeta[i] += (float)s1;
    if (dgamma) dgamma[i] += (float)s2;
}

extern "C" void op_layernorm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy,
                                           const float *mean, const float *rstd, const float *x, const float *gamma,
                                           int N, int D, float eps) {
    cuda_op("layernorm_backward", "N D dx dgamma dbeta", N, D, dx != NULL, dgamma != NULL, dbeta != NULL);
    if ((!dx && !dgamma && !dbeta) || N <= 0 || D <= 0) return;
    int nblk = (N + LN_ROWS - 1) / LN_ROWS;
    double *part = dgamma || dbeta ? (double *)cuda_scratch((size_t)nblk * 2 * D * sizeof(double)) : NULL;
    LAUNCH(ln_bwd, nblk, 256, dx, part, dy, mean, rstd, x, gamma, N, D, eps);
    if (part) {
        LAUNCH(ln_params, (D + 255) / 256, 256, dgamma, dbeta, part, nblk, D);
        cuda_scratch_free(part);
    }
}
