/* layers.h — parameterised layers shared by the U-Net, VAE and CLIP: a weight struct per layer type, a
 * builder that registers the layer's tensors in a WeightTable under a checkpoint prefix, and a forward that
 * calls kernels/ops.h. Shapes follow PyTorch (Linear w (out,in), Conv2d w (out,in,k,k)). */
#ifndef LS_LAYERS_H
#define LS_LAYERS_H

#include <string.h>

#include "common.h"  // defines: mallocCheck
#include "ops.h"     // defines: op_linear, op_conv2d, op_groupnorm, op_layernorm
#include "pool.h"    // defines: pool_alloc, pool_free (sbuf)
#include "trainset.h" // defines: TrainSet, trainset_add
#include "weights.h" // defines: WeightTable, wt_add

/* A low-rank update attached to a layer (LoRA, kohya/PEFT math):
 *   y += strength · scale · up(down(x)),  scale = alpha / rank,
 * or, when delta is set, a full-size update y += strength · scale · delta·x (LyCORIS LoHa/LoKr and DoRA,
 * whose ΔW is materialised once: delta (out, in) for a Linear, (cout, cin, k, k) for a Conv2d run with the
 * layer's stride and padding; down/up/rank are then unused and it has no gradients).
 * For a Linear, down is (r, in) and up (out, r). For a Conv2d, down is a k×k conv (r, cin, k, k) with the
 * layer's stride and padding and up a 1×1 conv (cout, r). Unmerged, the update runs every call and the
 * strength is read live through a pointer (changing it costs nothing); strength 0 skips it entirely. Merged,
 * w holds W + merged_strength·scale·up·down and the hook is skipped at run time. */
typedef struct LoraHook {
    const float *down, *up;
    int rank;
    const float *delta;     /* full ΔW instead of up·down, or NULL */
    float scale;            /* alpha / rank */
    const float *strength;  /* the adapter's multiplier for this component */
    int merged;
    float merged_strength;  /* strength baked into w when merged */
    struct LoraHook *next;
    /* Training (lora_grads_alloc): gradients of the loss w.r.t. down and up, same shapes, accumulated by
     * linear_backward / conv_backward. NULL: a frozen adapter (it still shapes the forward and dx). */
    float *ddown, *dup;
} LoraHook;

/* A bottleneck (Houlsby) adapter on a Linear's OUTPUT uses the same struct, in the layer's `adapter` list:
 *   y ← y + strength · scale · up(gelu(down(y))),   down (r, out), up (out, r), gelu exact (erf),
 * applied after the base output and its LoRA updates, hook after hook in list order. It is nonlinear in y,
 * so it is never merged (merged, merged_strength unused) and always runs at run time; strength 0 skips it
 * (the output is then exactly the base's). Its backward recomputes y from the layer's input x (one extra
 * Linear forward per adapted layer) rather than saving it. */
typedef struct {
    float *w; /* (out, in) */
    float *b; /* (out) or NULL */
    int in, out;
    int conv1x1;     /* 1: a 1×1 Conv2d in the checkpoint (SD1.x proj_in/proj_out), run as a Linear */
    LoraHook *lora;  /* attached adapters (NULL: none) */
    LoraHook *adapter; /* bottleneck adapters on the output (NULL: none) */
    float *w_base;   /* original w while w is a merged copy (NULL: not merged) */
    float *dw, *db;  /* full fine-tuning: gradients of w, b (same shapes), accumulated by linear_backward;
                      * NULL (the default): the base weights are frozen and their gradient is skipped */
} Linear;

typedef struct {
    float *w; /* (cout, cin, k, k) */
    float *b; /* (cout) or NULL */
    int cin, cout, k, stride, pad0, pad1;
    LoraHook *lora;
    float *w_base;
    float *dw, *db;  /* as Linear: NULL = frozen base weights */
} Conv2d;

typedef struct {
    float *g, *b; /* (C) scale and shift */
    int C, groups; /* groups: GroupNorm only */
    float eps;
    float *dg, *db; /* full fine-tuning: gradients of g, b (C), accumulated by groupnorm_backward /
                     * layernorm_backward; NULL (the default): frozen */
} Norm;

/* prefix e.g. "down_blocks.0.resnets.0.conv1"; registers prefix.weight (+ prefix.bias). */
void linear_build(Linear *l, WeightTable *t, const char *prefix, int in, int out, int bias);
/* as_conv: register the weight as (out,in,1,1) (a 1×1 conv used as a Linear, e.g. SD1 proj_in). */
void linear_build_conv1x1(Linear *l, WeightTable *t, const char *prefix, int in, int out);
void conv_build(Conv2d *c, WeightTable *t, const char *prefix, int cin, int cout, int k, int stride,
                int pad0, int pad1);
void norm_build(Norm *n, WeightTable *t, const char *prefix, int C, int groups, float eps);

/* y (M,out) = x (M,in) · wᵀ + b  (+ unmerged LoRA updates, then the bottleneck adapters) */
void linear_forward(const Linear *l, float *y, const float *x, int M);
/* x (B,cin,H,W) → y (B,cout,Ho,Wo); Ho and Wo receive the output size (may be NULL). */
void conv_forward(const Conv2d *c, float *y, const float *x, int B, int H, int W, int *Ho, int *Wo);
/* ---- backward (training) ----
 * Conventions (kernels/ops.h): activation gradients (dx) are OVERWRITTEN, parameter gradients (LoRA
 * ddown/dup, full fine-tuning dw/db) ACCUMULATE. dx may be NULL (not needed: e.g. the input is data).
 * Base weights get no gradient unless the layer has dw/db buffers. Every live hook (unmerged, non-zero
 * strength) adds its path to dx; a hook with gradient buffers also accumulates, c = strength·scale,
 * t = down(x):   dup += c·dyᵀ·t,   dt = c·upᵀ·dy,   ddown += dtᵀ·x (conv: down's weight gradient),
 *                dx += down_backward(dt).
 * Merged hooks live inside w: they shape dx but get no gradient (train with unmerged adapters).
 * Bottleneck adapters (Linear only), last first, with y their input, t = down(y), a = gelu(t), c as above:
 *   dup += c·dyᵀ·a,   dt = gelu'(t) ⊙ (c·dy·up),   ddown += dtᵀ·y,   dy ← dy + dt·down,
 * and the layer's own backward then runs on that dy. */

/* Does the backward read this layer's forward input x? (a live hook with gradient buffers, dw, or any live
 * bottleneck adapter: its backward recomputes the layer's output from x) */
int linear_needs_input(const Linear *l);
int conv_needs_input(const Conv2d *c);

/* dy (M,out), x (M,in) the forward's input (only read when linear_needs_input) → dx (M,in). */
void linear_backward(const Linear *l, float *dx, const float *dy, const float *x, int M);
/* dy (B,cout,Ho,Wo), x (B,cin,H,W) the forward's input (only read when conv_needs_input) → dx (B,cin,H,W). */
void conv_backward(const Conv2d *c, float *dx, const float *dy, const float *x, int B, int H, int W);

/* GroupNorm (+ fused silu) on x (B,C,HW). mean/rstd (B·G): NULL (inference), or where a training forward
 * keeps the statistics for the backward (op_groupnorm_fwd_stats); y is the same bits either way. */
static inline void groupnorm_forward(const Norm *n, float *y, float *mean, float *rstd, const float *x, int B,
                                     int HW, int silu) {
    if (mean) op_groupnorm_fwd_stats(y, mean, rstd, x, n->g, n->b, B, n->C, HW, n->groups, n->eps, silu);
    else op_groupnorm(y, x, n->g, n->b, B, n->C, HW, n->groups, n->eps, silu);
}
/* LayerNorm on x (N,C); mean/rstd (N) as groupnorm_forward's. */
static inline void layernorm_forward(const Norm *n, float *y, float *mean, float *rstd, const float *x, int N) {
    if (mean) op_layernorm_fwd_stats(y, mean, rstd, x, n->g, n->b, N, n->C, n->eps);
    else op_layernorm(y, x, n->g, n->b, N, n->C, n->eps);
}
/* Their backwards: dx from dy, the forward's input x and saved statistics; the norm's dg/db += when it has
 * them (full fine-tuning), else it is frozen and they are skipped. dx may be NULL (only dg/db wanted). */
static inline void groupnorm_backward(const Norm *n, float *dx, const float *dy, const float *mean,
                                      const float *rstd, const float *x, int B, int HW, int silu) {
    op_groupnorm_backward(dx, n->dg, n->db, dy, mean, rstd, x, n->g, n->b, B, n->C, HW, n->groups, n->eps, silu);
}
static inline void layernorm_backward(const Norm *n, float *dx, const float *dy, const float *mean,
                                      const float *rstd, const float *x, int N) {
    op_layernorm_backward(dx, n->dg, n->db, dy, mean, rstd, x, n->g, N, n->C, n->eps);
}

/* A residual add: y = x + o (n floats); y may be x (in place). */
static inline void add_residual(float *y, const float *x, const float *o, size_t n) {
    if (y != x) memcpy(y, x, n * sizeof(float));
    op_add_inplace(y, o, n);
}

/* Full training of one model part (the U-Net, the VAE or the text encoder): refuse when a module holds a
 * merged adapter (its weights are then a modified copy; `what` names the part in the message), else make
 * every tensor a private writable float32 copy (wt_make_writable), give every tensor its gradient buffer
 * (wt_grads_alloc) and append each to ts under its checkpoint key. LS_ERR with nothing allocated on refusal. */
int layers_full_grads_alloc(WeightTable *t, TrainSet *ts, const char *what);

/* printf into a fresh stack buffer helper for building prefixes */
#define LS_NAME_MAX 256
void ls_fmt(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocate n floats (checked: aborts on out-of-memory). */
#define fbuf(n) ((float *)mallocCheck((size_t)(n) * sizeof(float)))
/* n floats of the backend's working memory (kernels/pool.h), for a forward pass's activations and
 * temporaries: given back with pool_free, never free. */
#define sbuf(n) ((float *)pool_alloc((size_t)(n) * sizeof(float)))
/* n floats that a training forward keeps for the backward: pool memory too (so a warmed-up training step
 * makes no system allocation), given back with pool_free by the matching *_acts_free; the size is added to
 * *bytes, the struct's count of saved bytes. Not zeroed. */
static inline float *acts_buf(size_t n, size_t *bytes) {
    *bytes += n * sizeof(float);
    return sbuf(n);
}
/* A kept copy of x (n floats), counted the same way. */
static inline float *acts_copy(const float *x, size_t n, size_t *bytes) {
    float *p = acts_buf(n, bytes);
    memcpy(p, x, n * sizeof(float));
    return p;
}
/* A zeroed array of n elements of sz bytes from the pool: an activations struct's bookkeeping (its pointer
 * arrays and per-block structs), given back with pool_free by its *_acts_free. */
static inline void *acts_array(size_t n, size_t sz) {
    void *p = pool_alloc(n * sz);
    memset(p, 0, n * sz);
    return p;
}

#endif
