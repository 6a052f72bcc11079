/* blocks.h — the building blocks shared by the U-Net and the VAE (diffusers naming and math):
 * ResnetBlock2D, Attention, BasicTransformerBlock, Transformer2DModel, the VAE's mid-block attention and
 * the norm → silu → conv output head.
 *
 * One forward per block serves inference and training. Each takes a struct of saved activations (defined
 * with the backwards in blocks_bwd.h): NULL runs inference (every temporary from the backend's pool, nothing
 * kept); non-NULL also fills it (allocated there, released by the matching *_acts_free) with what the
 * block's backward reads. The output is the same bits either way.
 * Dims: B batch, C channels, H/W spatial, T = H·W tokens, Tc context tokens, Cc context channels. */
#ifndef LS_BLOCKS_H
#define LS_BLOCKS_H

#include "layers.h" // defines: Linear, Conv2d, Norm

typedef struct ResActs ResActs;         /* saved activations of the forwards below: blocks_bwd.h */
typedef struct AttnActs AttnActs;
typedef struct Tr2DActs Tr2DActs;
typedef struct VaeAttnActs VaeAttnActs;

/* == diffusers ResnetBlock2D (output_scale_factor 1, pre-norm, silu). U-Net eps 1e-5, VAE 1e-6. */
typedef struct {
    Norm norm1;         /* GN over cin */
    Conv2d conv1;       /* 3×3 cin→cout */
    Linear time_proj;   /* time_emb_proj: temb→cout (absent in the VAE: temb == 0) */
    Norm norm2;         /* GN over cout */
    Conv2d conv2;       /* 3×3 cout→cout */
    Conv2d shortcut;    /* conv_shortcut 1×1 cin→cout, only when cin != cout */
    int cin, cout, temb, has_shortcut;
} ResBlock;

void resblock_build(ResBlock *r, WeightTable *t, const char *prefix, int cin, int cout, int temb,
                    int groups, float eps);
/* x (B,cin,H,W), emb_silu (B,temb) = silu(time embedding) or NULL → out (B,cout,H,W). */
void resblock_forward(const ResBlock *r, ResActs *acts, float *out, const float *x, const float *emb_silu, int B,
                      int H, int W);

/* == diffusers Attention: to_q/to_k/to_v (bias optional), to_out.0 with bias; heads × dim_head = C. */
typedef struct {
    Linear to_q, to_k, to_v, to_out;
    int heads, dim_head;
} Attn;

void attn_build(Attn *a, WeightTable *t, const char *prefix, int C, int Cc, int heads, int qkv_bias);
/* x (B,T,C), ctx (B,Tc,Cc) or NULL for self-attention → out (B,T,C). */
void attn_forward(const Attn *a, AttnActs *acts, float *out, const float *x, const float *ctx, int B, int T,
                  int Tc);

/* == diffusers BasicTransformerBlock (self-attn, cross-attn, GEGLU feed-forward; pre-LN, eps 1e-5). */
typedef struct {
    Norm norm1, norm2, norm3;
    Attn attn1, attn2;
    Linear ff_in;  /* ff.net.0.proj: C→8C (value half, gate half) */
    Linear ff_out; /* ff.net.2: 4C→C */
    int C;
} TBlock;

/* == diffusers Transformer2DModel (SD1: GN eps 1e-6, 1×1-conv proj_in/out; SD2: Linear projections). */
typedef struct {
    Norm norm;
    Linear proj_in, proj_out;
    TBlock *blocks;
    int n_blocks, C;
} Transformer2D;

void transformer2d_build(Transformer2D *tr, WeightTable *t, const char *prefix, int C, int Cc, int heads,
                         int n_blocks, int groups, int linear_proj);
void transformer2d_free(Transformer2D *tr);
/* x (B,C,H,W), ctx (B,Tc,Cc) → out (B,C,H,W). */
void transformer2d_forward(const Transformer2D *tr, Tr2DActs *acts, float *out, const float *x, const float *ctx,
                           int B, int H, int W, int Tc);

/* == diffusers Attention in the VAE mid block: GN(eps 1e-6) + single-head attention with biases +
 * residual. Key names: group_norm, to_q, to_k, to_v, to_out.0. */
typedef struct {
    Norm norm;
    Attn attn;
} VaeAttn;

void vae_attn_build(VaeAttn *a, WeightTable *t, const char *prefix, int C, int groups);
/* x (B,C,H,W) → out (B,C,H,W) */
void vae_attn_forward(const VaeAttn *a, VaeAttnActs *acts, float *out, const float *x, int B, int H, int W);

/* == the output head that ends the U-Net and both VAE halves: y = conv(silu(groupnorm(x))), x (B,C,H,W).
 * mean/rstd (B·G): NULL, or where training keeps the norm's statistics (norm_silu_conv_backward). */
void norm_silu_conv_forward(const Norm *n, const Conv2d *conv, float *y, float *mean, float *rstd, const float *x,
                            int B, int H, int W);

#endif
