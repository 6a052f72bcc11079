/* elementwise.cu — activations and their backward, GEGLU, the adds, the per-channel bias and its gradient, the
 * timestep embedding: one thread per value (grid-stride loops), each op one kernel.
 *
 * The activations use CUDA's accurate single-precision functions (expf, normcdff; no --use_fast_math). SiLU's
 * sigmoid takes exp of -|x| only, as the CPU's does (never overflows). The exact GELU is x·Φ(x) with Φ =
 * normcdff, which keeps its relative accuracy in the negative tail where 1 + erf(x/√2) cancels.
 */
#include "cuda_base.cuh" // defines: LAUNCH, GRID_STRIDE, grid_for, cuda_op, block_sum

#define INV_SQRT_2PI 0.39894228040143268f

__device__ inline float sigmoid(float x) {
    float e = expf(-fabsf(x)); /* in (0, 1] */
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
__device__ inline float gelu(float x) { return x * normcdff(x); }
/* d/dx x·Φ(x) = Φ(x) + x·φ(x) */
__device__ inline float gelu_grad(float x) { return normcdff(x) + x * (INV_SQRT_2PI * expf(-0.5f * x * x)); }

enum { ACT_SILU, ACT_GELU, ACT_QUICK_GELU };

__global__ void act_inplace(float *x, size_t n, int kind) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        x[i] = kind == ACT_GELU ? gelu(v) : v * sigmoid(kind == ACT_SILU ? v : 1.702f * v);
    }
}

static void act(const char *name, float *x, size_t n, int kind) {
    cuda_op(name, "n", n);
    if (n) LAUNCH(act_inplace, grid_for(n), BLOCK, x, n, kind);
}
extern "C" void op_silu_inplace_cuda(float *x, size_t n) { act("silu_inplace", x, n, ACT_SILU); }
extern "C" void op_gelu_inplace_cuda(float *x, size_t n) { act("gelu_inplace", x, n, ACT_GELU); }
extern "C" void op_quick_gelu_inplace_cuda(float *x, size_t n) { act("quick_gelu_inplace", x, n, ACT_QUICK_GELU); }

/* dx = dy · f'(x); dx may be dy */
__global__ void act_backward(float *dx, const float *dy, const float *x, size_t n, int kind) {
    GRID_STRIDE(i, n) {
        float v = x[i], g;
        if (kind == ACT_GELU) {
            g = gelu_grad(v);
        } else {
            float a = kind == ACT_SILU ? 1.0f : 1.702f, s = sigmoid(a * v); /* d/dx x·σ(ax) = σ + a·x·σ(1 - σ) */
            g = s + a * v * s * (1.0f - s);
        }
        dx[i] = dy[i] * g;
    }
}

static void act_bwd(const char *name, float *dx, const float *dy, const float *x, size_t n, int kind) {
    cuda_op(name, "n", n);
    if (n) LAUNCH(act_backward, grid_for(n), BLOCK, dx, dy, x, n, kind);
}
extern "C" void op_silu_backward_cuda(float *dx, const float *dy, const float *x, size_t n) {
    act_bwd("silu_backward", dx, dy, x, n, ACT_SILU);
}
extern "C" void op_gelu_backward_cuda(float *dx, const float *dy, const float *x, size_t n) {
    act_bwd("gelu_backward", dx, dy, x, n, ACT_GELU);
}
extern "C" void op_quick_gelu_backward_cuda(float *dx, const float *dy, const float *x, size_t n) {
    act_bwd("quick_gelu_backward", dx, dy, x, n, ACT_QUICK_GELU);
}

/* x (N, 2D) → y (N, D): y = value · gelu(gate), value = x[:, :D], gate = x[:, D:] */
__global__ void geglu_fwd(float *y, const float *x, int N, int D) {
    GRID_STRIDE(i, (size_t)N * D) {
        size_t r = i / D, d = i % D;
        const float *xr = x + r * 2 * D;
        y[i] = xr[d] * gelu(xr[D + d]);
    }
}

extern "C" void op_geglu_cuda(float *y, const float *x, int N, int D) {
    cuda_op("geglu", "N D", N, D);
    if (N > 0 && D > 0) LAUNCH(geglu_fwd, grid_for((size_t)N * D), BLOCK, y, x, N, D);
}

/* dvalue = dy·gelu(gate), dgate = dy·value·gelu'(gate) */
__global__ void geglu_bwd(float *dx, const float *dy, const float *x, int N, int D) {
    GRID_STRIDE(i, (size_t)N * D) {
        size_t r = i / D, d = i % D;
        const float *xr = x + r * 2 * D;
        float a = xr[d], g = xr[D + d], cdf = normcdff(g), dyi = dy[i];
        dx[r * 2 * D + d] = dyi * g * cdf;
        dx[r * 2 * D + D + d] = dyi * a * (cdf + g * (INV_SQRT_2PI * expf(-0.5f * g * g)));
    }
}

extern "C" void op_geglu_backward_cuda(float *dx, const float *dy, const float *x, int N, int D) {
    cuda_op("geglu_backward", "N D", N, D);
    if (N > 0 && D > 0) LAUNCH(geglu_bwd, grid_for((size_t)N * D), BLOCK, dx, dy, x, N, D);
}

__global__ void add_vec(float *y, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] += x[i];
}

extern "C" void op_add_inplace_cuda(float *y, const float *x, size_t n) {
    cuda_op("add_inplace", "n", n);
    if (n) LAUNCH(add_vec, grid_for(n), BLOCK, y, x, n);
}

/* y (B,C,HW) += v[b,c] */
__global__ void add_bias(float *y, const float *v, size_t n, int HW) {
    GRID_STRIDE(i, n) y[i] += v[i / HW];
}

extern "C" void op_add_channel_bias_cuda(float *y, const float *v, int B, int C, int HW) {
    cuda_op("add_channel_bias", "B C HW", B, C, HW);
    size_t n = (size_t)B * C * HW;
    if (n) LAUNCH(add_bias, grid_for(n), BLOCK, y, v, n, HW);
}

/* y (B,C,HW) = v[c] */
__global__ void fill_channels(float *y, const float *v, size_t n, int C, int HW) {
    GRID_STRIDE(i, n) y[i] = v[i / HW % C];
}

void cuda_fill_channels(float *y, const float *v, int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    if (n) LAUNCH(fill_channels, grid_for(n), BLOCK, y, v, n, C, HW);
}

/* One block per output value: the sum over its (b, hw) values in double, block_sum's fixed order. */
__global__ void channel_sums(float *out, const float *dy, int B, int C, int HW, int per_batch) {
    int o = blockIdx.x; /* per_batch: o = b·C + c; else o = c */
    int nb = per_batch ? 1 : B;
    double acc = 0.0;
    for (size_t i = threadIdx.x; i < (size_t)nb * HW; i += blockDim.x) {
        size_t b = i / HW, hw = i % HW;
        size_t plane = per_batch ? (size_t)o : b * C + o;
        acc += dy[plane * HW + hw];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[o] += (float)acc;
}

void cuda_channel_sums(float *out, const float *dy, int B, int C, int HW, int per_batch) {
    int nout = per_batch ? B * C : C;
    if (nout > 0) LAUNCH(channel_sums, nout, BLOCK, out, dy, B, C, HW, per_batch);
}

extern "C" void op_add_channel_bias_backward_cuda(float *dv, const float *dy, int B, int C, int HW) {
    cuda_op("add_channel_bias_backward", "B C HW", B, C, HW);
    cuda_channel_sums(dv, dy, B, C, HW, 1);
}

/* emb (B,dim) = [cos(t·f_k), sin(t·f_k)], in the CPU's float order; exp, cos and sin in double, then rounded,
 * which gives glibc's correctly rounded expf (CUDA's expf is within 2 ulp, and at t ~ 1000 one ulp of f_k moves
 * the phase by ~1e-4). */
__global__ void timestep_emb(float *emb, const float *t, int B, int half, float shift, float neg_log_period) {
    GRID_STRIDE(i, (size_t)B * half) {
        int b = (int)(i / half), k = (int)(i % half);
        float e = neg_log_period * (float)k;
        e = e / ((float)half - shift);
        float arg = t[b] * (float)exp((double)e);
        emb[(size_t)b * 2 * half + k] = (float)cos((double)arg);
        emb[(size_t)b * 2 * half + half + k] = (float)sin((double)arg);
    }
}

extern "C" void op_timestep_embedding_cuda(float *emb, const float *t, int B, int dim, float shift) {
    cuda_op("timestep_embedding", "B dim", B, dim);
    int half = dim / 2;
    if (B > 0 && half > 0)
        LAUNCH(timestep_emb, grid_for((size_t)B * half), BLOCK, emb, t, B, half, shift, (float)(-log(10000.0)));
}
