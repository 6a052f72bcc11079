/* blocks_bwd.h — backward of the U-Net and VAE blocks (blocks.h): ResnetBlock2D, Attention,
 * BasicTransformerBlock, Transformer2DModel, the VAE mid-block attention, the output head; and the structs of
 * activations their forwards save for them.
 *
 * A block's forward (blocks.c), given a struct below, fills it with the backend's pool memory (kernels/pool.h;
 * the matching *_acts_free gives it back); its *_backward walks the forward's lines in reverse. A block's own
 * input x is NOT saved in its struct: the caller keeps it (in the U-Net every block input is the previous
 * block's saved output) and passes it to the backward again, llm.c style (outputs, saved caches, inputs,
 * weights are in the block struct, dims).
 *
 * What is saved (the rest is recomputed, which is cheap: norms and elementwise ops):
 *  - GroupNorm/LayerNorm: mean/rstd of their input (the input itself is a saved stream tensor). A norm's
 *    output is recomputed in the backward only when the layer after it needs its input (LoRA gradients).
 *  - Attention: q, k, v (never the scores: the backward recomputes them per head and chunk), and the
 *    attention output (to_out's input) only when to_out needs its input.
 *  - Transformer block: the residual stream before norm2 and norm3 (the stream before norm1 is the block's
 *    input) and the ff_in output (N, 8C), from which GEGLU's output is recomputed.
 *  - ResnetBlock2D: h = conv1(silu(norm1 x)) + time_emb_proj(emb), the input of norm2.
 *  - VAE attention: its GroupNorm statistics and the Attention's q, k, v (the normed tokens are recomputed).
 *
 * Gradient conventions (kernels/ops.h, layers.h): dx outputs are OVERWRITTEN; parameter gradients (LoRA
 * ddown/dup) ACCUMULATE; gradients of inputs shared by many blocks — the time embedding (demb_silu) and
 * the text context (dctx) — ACCUMULATE too, so the caller zeroes them once per backward. Norms get
 * gamma/beta gradients (+=) only when they have dg/db buffers (full fine-tuning); else none is computed.
 * Dims: B batch, C channels, H/W spatial, T = H·W, Tc context tokens. */
#ifndef LS_BLOCKS_BWD_H
#define LS_BLOCKS_BWD_H

#include "blocks.h" // defines: ResBlock, Attn, TBlock, Transformer2D, ResActs, AttnActs, Tr2DActs, VaeAttnActs

/* ---- ResnetBlock2D ---- */
struct ResActs {
    float *mean1, *rstd1; /* (B·G) norm1 statistics of the input x */
    float *h;             /* (B,cout,H,W) conv1(silu(norm1 x)) + time_emb_proj(emb): norm2's input */
    float *mean2, *rstd2; /* (B·G) norm2 statistics of h */
    size_t bytes;         /* bytes saved */
};

/* dy (B,cout,H,W) → dx (B,cin,H,W). emb_silu (B,temb) as in the forward (may be NULL: no time input);
 * demb_silu (B,temb) += the gradient w.r.t. emb_silu (NULL: not needed). */
void resblock_backward(const ResBlock *r, const ResActs *acts, float *dx, float *demb_silu, const float *dy,
                       const float *x, const float *emb_silu, int B, int H, int W);
void resblock_acts_free(ResActs *acts);

/* ---- Attention ---- */
struct AttnActs {
    float *q;    /* (B,T,C) */
    float *k, *v; /* (B,Tk,C), Tk = T (self-attention) or Tc (cross-attention) */
    float *o;    /* (B,T,C) attention output = to_out's input; NULL unless to_out needs it */
    size_t bytes;
};

/* dy (B,T,C) → dx (B,T,C) (for self-attention the sum of the q, k and v paths). Cross-attention:
 * dctx (B,Tc,Cc) += the context gradient (NULL: not needed, ctx is frozen). x is read only when a
 * projection of it needs its input (attn_needs_x); ctx only when to_k/to_v need theirs. */
void attn_backward(const Attn *a, const AttnActs *acts, float *dx, float *dctx, const float *dy,
                   const float *x, const float *ctx, int B, int T, int Tc);
/* Does attn_backward read x? (self: any of to_q/to_k/to_v; cross: to_q) */
int attn_needs_x(const Attn *a, int self);
void attn_acts_free(AttnActs *acts);

/* ---- BasicTransformerBlock ---- */
typedef struct {
    float *mean1, *rstd1; /* (B·T) norm1 statistics of the block input */
    AttnActs attn1;
    float *h1;            /* (B,T,C) stream after the self-attention: norm2's input */
    float *mean2, *rstd2;
    AttnActs attn2;
    float *h2;            /* (B,T,C) stream after the cross-attention: norm3's input */
    float *mean3, *rstd3;
    float *ff;            /* (B,T,8C) ff.net.0.proj output: GEGLU's input */
    size_t bytes;
} TBlockActs;

/* ---- Transformer2DModel ---- */
struct Tr2DActs {
    float *mean, *rstd; /* (B·G) GroupNorm statistics of the input */
    float **hs;         /* [n_blocks+1] (B,T,C) token stream: hs[0] = proj_in output (block 0's input),
                         * hs[i+1] = block i's output; hs[n_blocks] is proj_out's input */
    TBlockActs *blocks; /* [n_blocks] */
    int n_blocks;
    size_t bytes;
};

/* dy (B,C,H,W) → dx (B,C,H,W) (residual included); dctx (B,Tc,Cc) += (NULL: not needed). */
void transformer2d_backward(const Transformer2D *tr, const Tr2DActs *acts, float *dx, float *dctx,
                            const float *dy, const float *x, const float *ctx, int B, int H, int W, int Tc);
void transformer2d_acts_free(Tr2DActs *acts);

/* ---- VAE mid-block attention (VaeAttn): out = x + nchw(attn(ntc(GN x))) ---- */
struct VaeAttnActs {
    float *mean, *rstd; /* (B·G) group_norm statistics of the input x */
    AttnActs attn;      /* q, k, v of the single-head self-attention (and to_out's input when it needs it) */
    size_t bytes;
};

/* dy (B,C,H,W) → dx (B,C,H,W) (residual included); x the forward's input. */
void vae_attn_backward(const VaeAttn *a, const VaeAttnActs *acts, float *dx, const float *dy, const float *x,
                       int B, int H, int W);
void vae_attn_acts_free(VaeAttnActs *acts);

/* ---- output head y = conv(silu(groupnorm(x))) (norm_silu_conv_forward) ----
 * dx (B,C,H,W) from dy; mean/rstd are the forward's GroupNorm statistics; the norm's output is recomputed
 * only when the conv needs its input (weight gradient). Accumulates the conv's and the norm's gradients
 * when they have buffers. */
void norm_silu_conv_backward(const Norm *n, const Conv2d *conv, float *dx, const float *dy, const float *x,
                             const float *mean, const float *rstd, int B, int C, int H, int W);

#endif
