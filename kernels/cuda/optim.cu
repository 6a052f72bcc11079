/* optim.cu — what a step does between layers: the token embedding gather, the classifier-free-guidance
 * combine, axpy, the MSE loss, the sum of squares, the AdamW update, the sampler step, scale and divide.
 *
 * Built with --fmad=false (CMakeLists.txt): each float expression rounds after every operation, in the order
 * the CPU code and the references write it, so these ops give the CPU's bits (the tests compare several with
 * tolerance 0). The two reductions (mse_loss, sum_squares) sum in double in a fixed order: RED_BLOCKS blocks
 * each take every RED_BLOCKS·BLOCK-th value from their start, reduce in a fixed tree, and one block adds the
 * RED_BLOCKS partial sums in block order — the same bits on every run and every GPU (the order depends on n
 * only), ~1e-16 relative from the CPU's index-order sum.
 */
#include <math.h>

#include "cuda_base.cuh" // defines: LAUNCH, GRID_STRIDE, grid_for, cuda_op, block_sum, cuda_scratch

#define RED_BLOCKS 256

__global__ void embedding_fwd(float *y, const float *tok, const float *pos, const int *ids, int L, int D, size_t n) {
    GRID_STRIDE(i, n) {
        size_t t = i / D, d = i % D;
        y[i] = tok[(size_t)ids[t] * D + d] + pos[(t % L) * D + d];
    }
}

extern "C" void op_embedding_cuda(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D) {
    cuda_op("embedding", "B L D", B, L, D);
    size_t n = (size_t)B * L * D;
    if (n) LAUNCH(embedding_fwd, grid_for(n), BLOCK, y, tok, pos, ids, L, D, n);
}

__global__ void cfg_kernel(float *eps, const float *cond, float g, size_t n) {
    GRID_STRIDE(j, n) eps[j] = eps[j] + g * (cond[j] - eps[j]);
}

extern "C" void op_cfg_combine_cuda(float *eps, const float *cond, float g, size_t n) {
    cuda_op("cfg_combine", "n", n);
    if (n) LAUNCH(cfg_kernel, grid_for(n), BLOCK, eps, cond, g, n);
}

__global__ void axpy_kernel(float *y, float a, const float *x, size_t n) {
    GRID_STRIDE(j, n) y[j] += a * x[j];
}

extern "C" void op_axpy_cuda(float *y, float a, const float *x, size_t n) {
    cuda_op("axpy", "n", n);
    if (n) LAUNCH(axpy_kernel, grid_for(n), BLOCK, y, a, x, n);
}

__global__ void scale_kernel(float *y, const float *x, float s, size_t n) {
    GRID_STRIDE(j, n) y[j] = x[j] * s;
}

extern "C" void op_scale_cuda(float *y, const float *x, float s, size_t n) {
    cuda_op("scale", "n", n);
    if (n) LAUNCH(scale_kernel, grid_for(n), BLOCK, y, x, s, n);
}

__global__ void divide_kernel(float *y, const float *x, float d, size_t n) {
    GRID_STRIDE(j, n) y[j] = x[j] / d;
}

extern "C" void op_divide_cuda(float *y, const float *x, float d, size_t n) {
    cuda_op("divide", "n", n);
    if (n) LAUNCH(divide_kernel, grid_for(n), BLOCK, y, x, d, n);
}

/* ---- reductions ---- */

/* part[blockIdx.x] = Σ over this block's values of w_i·d_i² (mse: d = out - target, w = w[i % hw] or 1; dout
 * = 2·w·d/n unless NULL) or of x_i² (sum of squares: target == NULL) */
__global__ void sq_partial(double *part, float *dout, const float *out, const float *target, const float *w,
                           size_t hw, size_t n) {
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)RED_BLOCKS * BLOCK) {
        if (!target) {
            acc += (double)out[i] * out[i];
            continue;
        }
        double d = (double)out[i] - (double)target[i], wi = w ? (double)w[i % hw] : 1.0;
        acc += wi * d * d;
        if (dout) dout[i] = (float)(2.0 * wi * d / (double)n);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

/* *result = Σ part[0..RED_BLOCKS) (one block of RED_BLOCKS threads) */
__global__ void sum_partials(double *result, const double *part) {
    double s = block_sum(part[threadIdx.x]);
    if (threadIdx.x == 0) *result = s;
}

static double sum_sq(float *dout, const float *out, const float *target, const float *w, size_t hw, size_t n) {
    double *part = (double *)cuda_scratch(RED_BLOCKS * sizeof(double));
    LAUNCH(sq_partial, RED_BLOCKS, BLOCK, part, dout, out, target, w, hw ? hw : 1, n);
    LAUNCH(sum_partials, 1, RED_BLOCKS, cuda_backend()->result, part);
    cuda_scratch_free(part);
    return cuda_result();
}

extern "C" double op_mse_loss_cuda(float *dout, const float *out, const float *target, const float *w, size_t hw,
                                   size_t n) {
    cuda_op("mse_loss", "n hw weighted", n, hw, w != NULL);
    return sum_sq(dout, out, target, w, hw, n) / (double)n;
}

extern "C" double op_sum_squares_cuda(const float *x, size_t n) {
    cuda_op("sum_squares", "n", n);
    return sum_sq(NULL, x, NULL, NULL, 1, n);
}

/* ---- AdamW and the sampler step: the CPU's formulas, argument structs passed by value ---- */

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, AdamwArgs a) {
    GRID_STRIDE(j, n) {
        double gj = (double)g[j] * a.gscale;
        double mj = a.beta1 * m[j] + (1.0 - a.beta1) * gj;
        double vj = a.beta2 * v[j] + (1.0 - a.beta2) * gj * gj;
        m[j] = (float)mj, v[j] = (float)vj;
        double pj = (double)p[j] * (1.0 - a.lr * a.weight_decay); /* decoupled weight decay */
        pj -= a.lr * (mj / a.bc1) / (sqrt(vj / a.bc2) + a.eps);
        p[j] = (float)pj;
    }
}

extern "C" void op_adamw_cuda(float *p, const float *g, float *m, float *v, size_t n, const AdamwArgs *a) {
    cuda_op("adamw", "n", n);
    if (n) LAUNCH(adamw_kernel, grid_for(n), BLOCK, p, g, m, v, n, *a);
}

/* op_sampler_step_ref's loop body, operation for operation */
__global__ void sampler_kernel(SamplerStepArgs a, float *x, float *prev, const float *mo, const float *noise,
                               size_t n) {
    GRID_STRIDE(j, n) {
        if (a.family == OP_STEP_DDIM) {
            float x0 = a.v ? a.sa * x[j] - a.sb * mo[j] : (x[j] - a.sb * mo[j]) / a.sa;
            float e = a.v ? a.sa * mo[j] + a.sb * x[j] : mo[j];
            x[j] = a.sa_prev * x0 + a.dir * e;
        } else if (a.family == OP_STEP_EULER) {
            float x0 = a.v ? mo[j] * a.cv + x[j] / a.s2p1 : x[j] - a.sigma * mo[j];
            float d = (x[j] - x0) / a.sigma;
            float xn = x[j] + d * a.dt;
            if (noise) xn = xn + noise[j] * a.sigma_up;
            x[j] = xn;
        } else {
            float D = a.v ? a.alpha * x[j] - a.sigma * mo[j] : (x[j] - a.sigma * mo[j]) / a.alpha;
            if (a.final) x[j] = D;
            else if (a.second) x[j] = a.cx * x[j] - a.cd * D - a.cd1 * (a.inv_r0 * (D - prev[j]));
            else x[j] = a.cx * x[j] - a.cd * D;
            prev[j] = D;
        }
    }
}

extern "C" void op_sampler_step_cuda(const SamplerStepArgs *a, float *x, float *prev, const float *mo,
                                     const float *noise, size_t n) {
    cuda_op("sampler_step", "n family", n, a->family);
    if (n) LAUNCH(sampler_kernel, grid_for(n), BLOCK, *a, x, prev, mo, noise, n);
}
