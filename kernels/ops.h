/* ops.h — the one interface through which models call compute kernels.
 *
 * Conventions (every op):
 *  - float32, row-major, C-contiguous. Image tensors are NCHW. Token tensors are (B, T, C) with channels
 *    contiguous. Dims: B batch, C channels, H/W spatial, T tokens, D features, NH heads, G groups.
 *  - Outputs never alias inputs unless the prototype says "in place".
 *  - Forward ops overwrite their output. (The training issue adds *_backward ops: parameter gradients
 *    accumulate (+=), activation gradients overwrite.)
 *  - Each op has a plain, obviously-correct reference in kernels/cpu/ref.c (suffix _ref) used as the test
 *    oracle; the functions below are the fast multithreaded CPU versions (OpenMP + BLAS). A CUDA backend
 *    (later issue) provides the same prototypes.
 *  - Ops may allocate bounded scratch internally; they never hold state between calls.
 */
#ifndef LS_OPS_H
#define LS_OPS_H

#include <stddef.h>

/* y[M,N] = x[M,K] · w[N,K]ᵀ + b[N]   (== torch.nn.Linear; b may be NULL) */
void op_linear(float *y, const float *x, const float *w, const float *b, int M, int K, int N);

/* 2-D convolution (cross-correlation, zero padding), == torch.nn.Conv2d with dilation 1, groups 1.
 * x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or NULL, y (B,Cout,Ho,Wo).
 * pad0 pads top and left, pad1 pads bottom and right (pad0 == pad1 is the usual symmetric padding; the VAE
 * encoder's downsample uses pad0 = 0, pad1 = 1). Ho = (H + pad0 + pad1 - k)/stride + 1, likewise Wo. */
void op_conv2d(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H, int W,
               int Cout, int k, int stride, int pad0, int pad1);
static inline int op_conv2d_out(int H, int k, int stride, int pad0, int pad1) {
    return (H + pad0 + pad1 - k) / stride + 1;
}

/* GroupNorm over x (B,C,HW) with G groups, biased variance in float, affine gamma/beta (C).
 * If silu != 0, applies y = silu(y) afterwards (fused; the common norm→silu pair). */
void op_groupnorm(float *y, const float *x, const float *gamma, const float *beta, int B, int C, int HW,
                  int G, float eps, int silu);

/* LayerNorm over the last dim D of x (N,D), affine gamma/beta (D). */
void op_layernorm(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                  float eps);

/* Multi-head scaled dot-product attention, softmax in float with max subtraction.
 * q (B,Tq,NH*Dh), k and v (B,Tk,NH*Dh), out (B,Tq,NH*Dh); head h uses features [h*Dh, (h+1)*Dh).
 * scale = 1/sqrt(Dh). causal != 0 masks key j > query i (requires Tq == Tk).
 * Never materialises more than one head's (chunk of) scores at a time. */
void op_attention(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                  int NH, int Dh, int causal);

/* Elementwise activations, in place on n values. */
void op_silu_inplace(float *x, size_t n);
void op_gelu_inplace(float *x, size_t n);       /* exact erf GELU */
void op_quick_gelu_inplace(float *x, size_t n); /* x * sigmoid(1.702 x) (CLIP) */

/* GEGLU: x (N, 2D) → y (N, D), y = a * gelu(g) with a = x[:, :D] (value), g = x[:, D:] (gate). */
void op_geglu(float *y, const float *x, int N, int D);

/* y[i] += x[i] (in place on y) */
void op_add_inplace(float *y, const float *x, size_t n);
/* y[b,c,:] += v[b,c] for y (B,C,HW), v (B,C) (time-embedding broadcast) */
void op_add_channel_bias(float *y, const float *v, int B, int C, int HW);

/* Nearest-neighbour resize x (B,C,H,W) → y (B,C,Ho,Wo) == F.interpolate(mode="nearest", size=...):
 * src = min(floor(dst · (float)(in/out)), in-1) with PyTorch's float scale (this differs from the exact
 * floor(dst·in/out) for some size pairs). Ho = 2H is the usual ×2 upsample. */
void op_upsample_nearest(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);

/* Channel concat: a (B,Ca,HW), b (B,Cb,HW) → y (B,Ca+Cb,HW) (torch.cat(dim=1)). */
void op_concat_channels(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW);

/* Layout change (B,C,T) ↔ (B,T,C), i.e. NCHW ↔ tokens. */
void op_nchw_to_ntc(float *y, const float *x, int B, int C, int T);
void op_ntc_to_nchw(float *y, const float *x, int B, int C, int T);

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding, flip_sin_to_cos=True,
 * downscale_freq_shift=shift): emb (B,dim) = [cos(t·f_k), sin(t·f_k)], f_k = exp(-ln(10000)·k/(half-shift)),
 * each step rounded to float in the source's order. t (B) may be fractional. dim must be even. */
void op_timestep_embedding(float *emb, const float *t, int B, int dim, float shift);

/* ---- plain references (kernels/cpu/ref.c): same semantics, naive loops, no BLAS, no threads ---- */
void op_linear_ref(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
void op_conv2d_ref(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H,
                   int W, int Cout, int k, int stride, int pad0, int pad1);
void op_groupnorm_ref(float *y, const float *x, const float *gamma, const float *beta, int B, int C,
                      int HW, int G, float eps, int silu);
void op_layernorm_ref(float *y, const float *x, const float *gamma, const float *beta, int N, int D,
                      float eps);
void op_attention_ref(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                      int NH, int Dh, int causal);
void op_geglu_ref(float *y, const float *x, int N, int D);
void op_upsample_nearest_ref(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo);

/* General matrix product: C (M,N) = alpha · op(A) · op(B) + beta · C, op(X) = X or Xᵀ.
 * A is (M,K) or, with transA, (K,M); B is (K,N) or, with transB, (N,K). Row-major, contiguous.
 * Used for LoRA (merging ΔW = up·down, the unmerged up-projection) and, later, weight gradients. */
void op_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
             float alpha, float beta);
void op_gemm_ref(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                 float alpha, float beta);

/* Number of threads the CPU backend uses (OpenMP max threads). */
int op_num_threads(void);

#endif
