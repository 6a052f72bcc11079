/* ops.h — the one interface through which models call compute kernels.
 *
 * Conventions (every op):
 *  - float32, row-major, C-contiguous. Image tensors are NCHW. Token tensors are (B, T, C) with channels
 *    contiguous. Dims: B batch, C channels, H/W spatial, T tokens, D features, NH heads, G groups.
 *  - Outputs never alias inputs unless the prototype says "in place".
 *  - Forward ops overwrite their output. (The training issue adds *_backward ops: parameter gradients
 *    accumulate (+=), activation gradients overwrite.)
 *  - Each op has a plain, obviously-correct reference in kernels/cpu/ref.c (suffix _ref) used as the test
 *    oracle. The op_* functions below dispatch through the backend's op table (OpTable, ls_ops); each backend
 *    names its implementations by its suffix (kernels/cpu: op_linear_cpu, ...; a CUDA backend: _cuda), so
 *    one binary holds several and the op tests run every backend present against the references.
 *  - Ops may allocate bounded scratch internally; they never hold state between calls.
 *  - Memory and ordering: every buffer handed to an op comes from the backend's alloc (op_alloc below; for
 *    the CPU backend any memory will do). A backend may run its ops asynchronously, in the order they were
 *    issued (CUDA: queued on the backend's one stream); op_sync waits until all of them have finished, and
 *    only then may the host read an op's output or overwrite an op's input. Ops that return a value
 *    (op_mse_loss, op_sum_squares, op_num_threads) wait themselves. Scalars and argument structs passed by
 *    pointer (AdamwArgs, SamplerStepArgs) are read on the host during the call and may live anywhere.
 */
#ifndef LS_OPS_H
#define LS_OPS_H

#include <stddef.h>
#include <string.h>

#include "op_list.h" // defines: LS_OPS, LS_OPS_SERIAL (every entry's signature)

/* One AdamW update's scalars (op_adamw): lr already multiplied by the tensor's lr multiplier; bc1, bc2 the
 * bias corrections 1 − β^t; gscale multiplies every gradient first (clipping). */
typedef struct AdamwArgs {
    double lr, beta1, beta2, eps, weight_decay, gscale, bc1, bc2;
} AdamwArgs;

/* One sampler update's scalars, computed per step by src/pipeline/scheduler.c in float32 as diffusers does;
 * op_sampler_step applies the family's per-element formula (model output mo, latents x in place):
 *  DDIM (η = 0):  x0 = v ? sa·x − sb·mo : (x − sb·mo)/sa;  e = v ? sa·mo + sb·x : mo;  x = sa_prev·x0 + dir·e
 *  Euler (a):     x0 = v ? mo·cv + x/s2p1 : x − sigma·mo;  x = x + ((x − x0)/sigma)·dt (+ noise·sigma_up)
 *  DPM++ 2M:      D = v ? alpha·x − sigma·mo : (x − sigma·mo)/alpha;  final: x = D;
 *                 else x = cx·x − cd·D (− cd1·inv_r0·(D − prev) when second);  prev = D */
enum { OP_STEP_DDIM, OP_STEP_EULER, OP_STEP_DPM };
typedef struct SamplerStepArgs {
    int family, v;
    float sa, sb, sa_prev, dir;                 /* DDIM */
    float sigma, cv, s2p1, dt, sigma_up;        /* Euler; ancestral when noise != NULL */
    float alpha, cx, cd, cd1, inv_r0;           /* DPM++ 2M (and sigma) */
    int second, final;
} SamplerStepArgs;

/* ---- the op table: one per backend (kernels/<backend>/table.c), every entry with the semantics documented
 * at its op_* wrapper below. ls_ops is the process's backend handle (the one global; kernels/ops.c): the
 * CPU backend unless ops_select chose another. A NULL entry: the backend lacks the op (only the reference
 * table has gaps; a compute backend fills every entry). The entries, in op_list.h's order: a function pointer
 * per op of LS_OPS and LS_OPS_SERIAL (op_list.h has the signatures and says what alloc, free and sync do). ---- */
typedef struct OpTable {
    const char *name;
    /* 1 when the ops also accept any other host memory (malloc'd, a mapped file: the CPU), 0 when every buffer
     * must come from alloc (CUDA: the weights are copied there at load) */
    int host_memory;
#define LS_OP_ENTRY(ret, op, params) ret(*op) params;
    LS_OPS(LS_OP_ENTRY)
    LS_OPS_SERIAL(LS_OP_ENTRY)
#undef LS_OP_ENTRY
} OpTable;

extern const OpTable op_table_cpu;  /* kernels/cpu/table.c: OpenMP + BLAS */
extern const OpTable op_table_ref;  /* kernels/cpu/ref.c: the plain references (forward ops; CPU memory) */
extern const OpTable op_table_cuda; /* kernels/cuda/table.c: cuBLAS (+ cuDNN) and own kernels; only in
                                     * programs that link lscuda (ops.c) */
extern const OpTable *ls_ops;       /* the backend in use */
/* Select a backend by name ("cpu", "cuda"; "ref" for tests): LS_OK, or -1 when no backend has that name
 * (or, for "cuda", this build has no CUDA or the machine no GPU). */
int ops_select(const char *name);
/* The backends this binary can run here, for tests: NULL-terminated. The CPU backend first; the CUDA
 * backend when compiled in and a GPU is present (cudaGetDeviceCount > 0). */
const OpTable *const *ops_backends(void);

/* Select the device for this process once, before any model is loaded: "cpu", "cuda" (an error when this
 * build or machine cannot run it) or "auto" (cuda when the CUDA backend is built and a GPU answers, else
 * cpu). The CUDA backend of the lorastyle program is a module (liblscuda.so beside the executable, or
 * $LORASTYLE_CUDA_LIB) loaded only here, so runs on the CPU never load the CUDA libraries. 0, or -1 with a
 * one-line reason in why (cap bytes). */
int ops_use_device(const char *device, char *why, size_t cap);

/* Memory of the backend in use (OpTable.alloc, .free, .sync). op_alloc aborts when out of memory (an
 * internal buffer); op_try_alloc returns NULL (a buffer whose size comes from the input: the caller says
 * what did not fit). */
void *op_alloc_failed(size_t bytes); /* ops.c: the abort */
static inline void *op_try_alloc(size_t bytes) {
    return ls_ops->alloc(bytes);
}
static inline void *op_alloc(size_t bytes) {
    void *p = ls_ops->alloc(bytes);
    return p ? p : op_alloc_failed(bytes);
}
/* op_alloc, zero-filled (by the host: before any op uses it). */
static inline void *op_zalloc(size_t bytes) {
    void *p = op_alloc(bytes);
    memset(p, 0, bytes);
    return p;
}
static inline void op_free(void *p) {
    ls_ops->free(p);
}
static inline void op_sync(void) {
    ls_ops->sync();
}

/* y[M,N] = x[M,K] · w[N,K]ᵀ + b[N]   (== torch.nn.Linear; b may be NULL) */
static inline void op_linear(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    ls_ops->linear(y, x, w, b, M, K, N);
}

/* 2-D convolution (cross-correlation, zero padding), == torch.nn.Conv2d with dilation 1, groups 1.
 * x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or NULL, y (B,Cout,Ho,Wo).
 * pad0 pads top and left, pad1 pads bottom and right (pad0 == pad1 is the usual symmetric padding; the VAE
 * encoder's downsample uses pad0 = 0, pad1 = 1). Ho = (H + pad0 + pad1 - k)/stride + 1, likewise Wo. */
static inline void op_conv2d(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W,
                             int Cout, int k, int stride, int pad0, int pad1) {
    ls_ops->conv2d(y, x, w, b, B, Cin, H, W, Cout, k, stride, pad0, pad1);
}
static inline int op_conv2d_out(int H, int k, int stride, int pad0, int pad1) {
    return (H + pad0 + pad1 - k) / stride + 1;
}

/* GroupNorm over x (B,C,HW) with G groups, biased variance in float, affine gamma/beta (C).
 * If silu != 0, applies y = silu(y) afterwards (fused; the common norm→silu pair). */
static inline void op_groupnorm(float *y, const float *x, const float *gamma, const float *beta, int B, int C,
                                int HW, int G, float eps, int silu) {
    ls_ops->groupnorm(y, x, gamma, beta, B, C, HW, G, eps, silu);
}

/* LayerNorm over the last dim D of x (N,D), affine gamma/beta (D). */
static inline void op_layernorm(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                                float eps) {
    ls_ops->layernorm(y, x, gamma, beta, N, D, eps);
}

/* Multi-head scaled dot-product attention, softmax in float with max subtraction.
 * q (B,Tq,NH*Dh), k and v (B,Tk,NH*Dh), out (B,Tq,NH*Dh); head h uses features [h*Dh, (h+1)*Dh).
 * scale = 1/sqrt(Dh). causal != 0 masks key j > query i (requires Tq == Tk).
 * Never materialises more than one head's (chunk of) scores at a time. */
static inline void op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                                int NH, int Dh, int causal) {
    ls_ops->attention(out, q, k, v, B, Tq, Tk, NH, Dh, causal);
}

/* Elementwise activations, in place on n values. */
static inline void op_silu_inplace(float *x, size_t n) {
    ls_ops->silu_inplace(x, n);
}
static inline void op_gelu_inplace(float *x, size_t n) {
    ls_ops->gelu_inplace(x, n);
} /* exact erf GELU */
static inline void op_quick_gelu_inplace(float *x, size_t n) {
    ls_ops->quick_gelu_inplace(x, n);
} /* x * sigmoid(1.702 x) (CLIP) */

/* GEGLU: x (N, 2D) → y (N, D), y = a * gelu(g) with a = x[:, :D] (value), g = x[:, D:] (gate). */
static inline void op_geglu(float *y, const float *x, int N, int D) {
    ls_ops->geglu(y, x, N, D);
}

/* y[i] += x[i] (in place on y) */
static inline void op_add_inplace(float *y, const float *x, size_t n) {
    ls_ops->add_inplace(y, x, n);
}
/* y[b,c,:] += v[b,c] for y (B,C,HW), v (B,C) (time-embedding broadcast) */
static inline void op_add_channel_bias(float *y, const float *v, int B, int C, int HW) {
    ls_ops->add_channel_bias(y, v, B, C, HW);
}

/* Nearest-neighbour resize x (B,C,H,W) → y (B,C,Ho,Wo) == F.interpolate(mode="nearest", size=...):
 * src = min(floor(dst · (float)(in/out)), in-1) with PyTorch's float scale (this differs from the exact
 * floor(dst·in/out) for some size pairs). Ho = 2H is the usual ×2 upsample. */
static inline void op_upsample_nearest(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo) {
    ls_ops->upsample_nearest(y, x, B, C, H, W, Ho, Wo);
}

/* Channel concat: a (B,Ca,HW), b (B,Cb,HW) → y (B,Ca+Cb,HW) (torch.cat(dim=1)). */
static inline void op_concat_channels(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
    ls_ops->concat_channels(y, a, b, B, Ca, Cb, HW);
}

/* Layout change (B,C,T) ↔ (B,T,C), i.e. NCHW ↔ tokens. */
static inline void op_nchw_to_ntc(float *y, const float *x, int B, int C, int T) {
    ls_ops->nchw_to_ntc(y, x, B, C, T);
}
static inline void op_ntc_to_nchw(float *y, const float *x, int B, int C, int T) {
    ls_ops->ntc_to_nchw(y, x, B, C, T);
}

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding, flip_sin_to_cos=True,
 * downscale_freq_shift=shift): emb (B,dim) = [cos(t·f_k), sin(t·f_k)], f_k = exp(-ln(10000)·k/(half-shift)),
 * each step rounded to float in the source's order. t (B) may be fractional. dim must be even. */
static inline void op_timestep_embedding(float *emb, const float *t, int B, int dim, float shift) {
    ls_ops->timestep_embedding(emb, t, B, dim, shift);
}

/* ---- plain references (kernels/cpu/ref.c): same semantics, naive loops, no BLAS, no threads ---- */
void op_linear_ref(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
void op_conv2d_ref(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W, int Cout,
                   int k, int stride, int pad0, int pad1);
void op_groupnorm_ref(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW, int G,
                      float eps, int silu);
void op_layernorm_ref(float *y, const float *x, const float *gamma, const float *beta, int N, int D, float eps);
void op_attention_ref(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH,
                      int Dh, int causal);
void op_geglu_ref(float *y, const float *x, int N, int D);
void op_upsample_nearest_ref(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);

/* General matrix product: C (M,N) = alpha · op(A) · op(B) + beta · C, op(X) = X or Xᵀ.
 * A is (M,K) or, with transA, (K,M); B is (K,N) or, with transB, (N,K). Row-major, contiguous.
 * Used for LoRA (merging ΔW = up·down, the unmerged up-projection) and, later, weight gradients. */
static inline void op_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                           float alpha, float beta) {
    ls_ops->gemm(C, A, B, M, N, K, transA, transB, alpha, beta);
}
void op_gemm_ref(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float alpha,
                 float beta);

/* Number of threads the CPU backend uses (OpenMP max threads). */
static inline int op_num_threads(void) {
    return ls_ops->num_threads();
}

/* ---- backward (kernels/cpu/..._bwd.c) ----
 * Signature order (llm.c): gradient outputs, then dy, saved caches, forward inputs, weights, dims.
 * Activation gradients (dx, dq, ...) are OVERWRITTEN; parameter gradients (dw, db, dgamma, dbeta) are
 * ACCUMULATED (+=), so the caller zeroes them once per step and a layer used twice adds up. Callers sum
 * gradients that meet at a skip/residual themselves (op_add_inplace). Any gradient output may be NULL: its
 * computation is skipped entirely (frozen base weights pass dw = NULL, which skips the weight-gradient
 * GEMM/conv — that is where LoRA training saves its time). Gradients never alias inputs unless stated. */

/* op_linear: dy (M,N), x (M,K), w (N,K).  dx (M,K) = dy·w;  dw (N,K) += dyᵀ·x;  db (N) += Σ_m dy.
 * x is read only when dw != NULL (a frozen layer need not keep its input; it may be NULL then). */
static inline void op_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                                      const float *w, int M, int K, int N) {
    ls_ops->linear_backward(dx, dw, db, dy, x, w, M, K, N);
}

/* op_conv2d: dy (B,Cout,Ho,Wo), x (B,Cin,H,W), w (Cout,Cin,k,k); same stride/pad0/pad1 as the forward.
 * dx (B,Cin,H,W) = transposed conv of dy (im2col adjoint, chunked like the forward);
 * dw (Cout,Cin,k,k) += Σ dy ⊗ im2col(x);  db (Cout) += Σ_{b,hw} dy.
 * x is read only when dw != NULL (a frozen conv need not keep its input; it may be NULL then). */
static inline void op_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                                      const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride,
                                      int pad0, int pad1) {
    ls_ops->conv2d_backward(dx, dw, db, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, pad1);
}

/* op_groupnorm that also saves mean, rstd (B·G floats, index b*G + g; rstd = 1/sqrt(var + eps)) for the
 * backward. y equals op_groupnorm's up to rounding. */
static inline void op_groupnorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                          const float *beta, int B, int C, int HW, int G, float eps, int silu) {
    ls_ops->groupnorm_fwd_stats(y, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
}
/* op_groupnorm (silu fused or not): dy, x (B,C,HW); mean, rstd (B·G) from op_groupnorm_fwd_stats, or both
 * NULL to recompute them from x (same result). dx (B,C,HW) overwritten; dgamma, dbeta (C) +=.
 * beta is read only when silu != 0 (to rebuild the pre-activation). */
static inline void op_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                                         const float *rstd, const float *x, const float *gamma, const float *beta,
                                         int B, int C, int HW, int G, float eps, int silu) {
    ls_ops->groupnorm_backward(dx, dgamma, dbeta, dy, mean, rstd, x, gamma, beta, B, C, HW, G, eps, silu);
}

/* op_layernorm that also saves mean, rstd (N floats each). */
static inline void op_layernorm_fwd_stats(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                          const float *beta, int N, int D, float eps) {
    ls_ops->layernorm_fwd_stats(y, mean, rstd, x, gamma, beta, N, D, eps);
}
/* op_layernorm: dy, x (N,D); mean, rstd (N) or both NULL (recomputed). dx (N,D); dgamma, dbeta (D) +=. */
static inline void op_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *mean,
                                         const float *rstd, const float *x, const float *gamma, int N, int D,
                                         float eps) {
    ls_ops->layernorm_backward(dx, dgamma, dbeta, dy, mean, rstd, x, gamma, N, D, eps);
}

/* op_attention: dout, q (B,Tq,NH*Dh); k, v (B,Tk,NH*Dh) — the forward's inputs, nothing else is saved.
 * dq (B,Tq,NH*Dh), dk, dv (B,Tk,NH*Dh) overwritten. Scores are recomputed per head per chunk of query rows
 * (flash-attention style; never a (Tq,Tk) matrix per head); causal as the forward (Tq == Tk). */
static inline void op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                         const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh,
                                         int causal) {
    ls_ops->attention_backward(dq, dk, dv, dout, q, k, v, B, Tq, Tk, NH, Dh, causal);
}

/* Activations, given the forward's input x (n values): dx = dy · f'(x). dx may equal dy (in place). */
static inline void op_silu_backward(float *dx, const float *dy, const float *x, size_t n) {
    ls_ops->silu_backward(dx, dy, x, n);
}
static inline void op_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
    ls_ops->gelu_backward(dx, dy, x, n);
} /* exact erf GELU */
static inline void op_quick_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
    ls_ops->quick_gelu_backward(dx, dy, x, n);
} /* x·σ(1.702x) */

/* op_geglu: dy (N,D), x (N,2D) the forward's input → dx (N,2D): [dvalue, dgate]. */
static inline void op_geglu_backward(float *dx, const float *dy, const float *x, int N, int D) {
    ls_ops->geglu_backward(dx, dy, x, N, D);
}

/* op_add_channel_bias: dv (B,C) += Σ_hw dy (B,C,HW) — accumulates like a bias gradient (zero dv first).
 * (dy itself flows on to y's input unchanged.) */
static inline void op_add_channel_bias_backward(float *dv, const float *dy, int B, int C, int HW) {
    ls_ops->add_channel_bias_backward(dv, dy, B, C, HW);
}

/* op_upsample_nearest: dy (B,C,Ho,Wo) → dx (B,C,H,W), each source pixel the sum of the outputs copied
 * from it (same PyTorch float-scale index rule). */
static inline void op_upsample_nearest_backward(float *dx, const float *dy, int B, int C, int H, int W, int Ho,
                                                int Wo) {
    ls_ops->upsample_nearest_backward(dx, dy, B, C, H, W, Ho, Wo);
}

/* op_concat_channels: dy (B,Ca+Cb,HW) → da (B,Ca,HW), db (B,Cb,HW); either may be NULL. */
static inline void op_concat_channels_backward(float *da, float *db, const float *dy, int B, int Ca, int Cb,
                                               int HW) {
    ls_ops->concat_channels_backward(da, db, dy, B, Ca, Cb, HW);
}

/* op_nchw_to_ntc: dy (B,T,C) → dx (B,C,T);  op_ntc_to_nchw: dy (B,C,T) → dx (B,T,C). */
static inline void op_nchw_to_ntc_backward(float *dx, const float *dy, int B, int C, int T) {
    ls_ops->nchw_to_ntc_backward(dx, dy, B, C, T);
}
static inline void op_ntc_to_nchw_backward(float *dx, const float *dy, int B, int C, int T) {
    ls_ops->ntc_to_nchw_backward(dx, dy, B, C, T);
}

/* ---- between layers: text embedding, guidance, losses, the optimizer (kernels/cpu/optim.c) ---- */

/* CLIP's input: y (B,L,D) = tok[ids[b,i]] (vocabulary V × D) + pos[i] (positions × D). ids are checked by the
 * caller (0 ≤ id < V). */
static inline void op_embedding(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D) {
    ls_ops->embedding(y, tok, pos, ids, B, L, D);
}
/* Classifier-free guidance, in place on the unconditional prediction: eps = eps + g·(cond − eps). */
static inline void op_cfg_combine(float *eps, const float *cond, float g, size_t n) {
    ls_ops->cfg_combine(eps, cond, g, n);
}
/* y += a·x (merging a LoRA update into a weight, and back). */
static inline void op_axpy(float *y, float a, const float *x, size_t n) {
    ls_ops->axpy(y, a, x, n);
}
/* Mean squared error of out against target (n values), summed in double in index order; dout (may be NULL)
 * = its gradient 2·(out − target)/n. */
static inline double op_mse_loss(float *dout, const float *out, const float *target, const float *w, size_t hw,
                                  size_t n) {
    return ls_ops->mse_loss(dout, out, target, w, hw, n);
}
/* Σ x² in double (the gradient norm). */
static inline double op_sum_squares(const float *x, size_t n) {
    return ls_ops->sum_squares(x, n);
}
/* One AdamW step on n parameters p with gradients g and moments m, v (fp32 state, double arithmetic):
 * g' = g·gscale; m = β1·m + (1−β1)·g'; v = β2·v + (1−β2)·g'²; p = p·(1 − lr·wd) − lr·(m/bc1)/(√(v/bc2) + eps). */
static inline void op_adamw(float *p, const float *g, float *m, float *v, size_t n, const AdamwArgs *a) {
    ls_ops->adamw(p, g, m, v, n, a);
}
void op_embedding_ref(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D);
void op_cfg_combine_ref(float *eps, const float *cond, float g, size_t n);
void op_axpy_ref(float *y, float a, const float *x, size_t n);
double op_mse_loss_ref(float *dout, const float *out, const float *target, const float *w, size_t hw, size_t n);
double op_sum_squares_ref(const float *x, size_t n);
void op_adamw_ref(float *p, const float *g, float *m, float *v, size_t n, const AdamwArgs *a);

/* ---- sampling (kernels/cpu/ref.c: the CPU backend runs the plain loops; latents are a few thousand values) ---- */

/* One step of a sampler family (SamplerStepArgs), in place on x (n values); prev (DPM++ 2M's previous data
 * prediction) is read when second and written; noise (Euler a) may be NULL otherwise. */
static inline void op_sampler_step(const SamplerStepArgs *a, float *x, float *prev, const float *mo,
                                   const float *noise, size_t n) {
    ls_ops->sampler_step(a, x, prev, mo, noise, n);
}
/* y = x·s and y = x/d (a division, as diffusers divides); y may equal x. */
static inline void op_scale(float *y, const float *x, float s, size_t n) {
    ls_ops->scale(y, x, s, n);
}
static inline void op_divide(float *y, const float *x, float d, size_t n) {
    ls_ops->divide(y, x, d, n);
}
void op_sampler_step_ref(const SamplerStepArgs *a, float *x, float *prev, const float *mo, const float *noise,
                         size_t n);
void op_scale_ref(float *y, const float *x, float s, size_t n);
void op_divide_ref(float *y, const float *x, float d, size_t n);

#endif
