/* unet_bwd.h — U-Net backward (LoRA and full fine-tuning gradients), the activations the training forward
 * (unet_forward_train, unet.c) saves for it, and the training loss.
 *
 * One training step on a batch:
 *     UNetActs acts = {0};
 *     lora_grads_zero(&lora);                                   // gradients accumulate
 *     unet_forward_train(&m.unet, &acts, out, x, t, ctx, B, H, W, Tc);
 *     double loss = unet_mse_loss(dout, out, target, n);        // dout = ∂loss/∂out
 *     unet_backward(&m.unet, &acts, NULL, dout);                // += into every hook's ddown/dup
 *     ... optimizer step on the LoRA down/up ...
 *     unet_acts_free(&acts);                                    // every step (see below)
 *
 * Gradients reach every live LoRA hook (unmerged, non-zero strength) that has gradient buffers
 * (lora_grads_alloc), on any Linear/Conv2d of the U-Net, including conv_in/conv_out and the time-embedding
 * MLP. Base weights, norms and biases are frozen (no gradient work is done for them) unless
 * unet_full_grads_alloc gave them gradient buffers (full fine-tuning: every tensor of the U-Net then gets
 * its gradient). Hooks without buffers (a second, frozen adapter) still act in the forward and in the
 * input gradients.
 *
 * The saved activations are the backend's pool memory (kernels/pool.h), like the forward's and the backward's
 * scratch. Free them at the end of each step (a struct passed to the next forward as it is still works: that
 * forward frees it first): the pool resizes its slab only when nothing is in use, so a step that ends with
 * the pool empty lets the next steps run without a system allocation.
 *
 * Saved activations (blocks_bwd.h for the blocks): the inputs (x, ctx copies), the time-embedding chain,
 * and every block's output — the stream tensors, each of which is the next block's input and, on the down
 * path, a skip — plus per-block norm statistics, attention q/k/v, transformer residual streams and
 * ff_in outputs, resnet norm2 inputs. Concatenations, upsampled maps and norm outputs are recomputed.
 * Dims: B batch, H/W latent size, Tc context tokens, C0 = block_out[0], temb = 4·C0. */
#ifndef LS_UNET_BWD_H
#define LS_UNET_BWD_H

#include "blocks_bwd.h"   // defines: ResActs, Tr2DActs
#include "trainset.h"     // defines: TrainSet
#include "unet.h"         // defines: UNet, UNetActs, UNET_MAX_LEVELS, unet_forward_train

/* Saved activations of one level of the down or up path. */
typedef struct {
    ResActs *res;        /* [n] */
    float **res_out;     /* [n] (B,cout,H,W) resnet outputs (the transformers' inputs) */
    Tr2DActs *tr;        /* [n], or NULL: no attention at this level */
    float **tr_out;      /* [n] (B,cout,H,W) transformer outputs, or NULL */
    float *sampler_out;  /* (B,cout,Ho,Wo) down/upsampler conv output, or NULL (no sampler) */
    int n;               /* blocks (resnets) in the level; 0: not filled */
    int H, W;            /* resolution of the level's resnets */
    int Ho, Wo;          /* resolution after the sampler */
} UNetLevelActs;

struct UNetActs {
    int B, H, W, Tc;
    float *x;            /* (B,in,H,W) copy of the input latent (conv_in's input) */
    float *ctx;          /* (B,Tc,Cc) copy of the text context */
    float *sin_emb;      /* (B,C0) sinusoidal timestep embedding: time_embedding.linear_1's input */
    float *e1;           /* (B,temb) linear_1 output (pre-silu) */
    float *e1_silu;      /* (B,temb) silu(e1): linear_2's input */
    float *emb;          /* (B,temb) linear_2 output (pre-silu) */
    float *emb_silu;     /* (B,temb) silu(emb): every resnet's time_emb_proj input */
    float *h_in;         /* (B,C0,H,W) conv_in output (the first skip) */
    UNetLevelActs down[UNET_MAX_LEVELS], up[UNET_MAX_LEVELS];
    ResActs mid_res[2];
    Tr2DActs mid_tr;
    float *mid_out[3];   /* (B,Cm,h,w) outputs of mid resnet 0, transformer, resnet 1 */
    float *mean_out, *rstd_out; /* (B·G) conv_norm_out statistics of the last up level's output */
    size_t bytes;        /* total bytes saved */
};

/* dout (B,out,H,W) = ∂loss/∂out for the forward that filled acts. ACCUMULATES every trainable LoRA hook's
 * ddown/dup (and dw/db of layers that have them). dctx (B,Tc,Cc): the gradient w.r.t. the text context
 * (overwritten; NULL: not needed — the text encoder is frozen). acts is not modified. */
void unet_backward(const UNet *u, const UNetActs *acts, float *dctx, const float *dout);

void unet_acts_free(UNetActs *acts);

/* Full fine-tuning (--method full): make every U-Net weight a private writable float32 copy
 * (wt_make_writable: costs one U-Net of float32 memory, 3.4 GB for SD1.5, when the checkpoint was an
 * mmapped F32 file; nothing when it was F16/BF16, already converted at load), give every Linear, Conv2d
 * and Norm gradient buffers (one zeroed arena of the U-Net's size: another 3.4 GB for SD1.5) and append
 * every tensor to ts under its checkpoint key ("down_blocks.0.resnets.0.conv1.weight", ...), value = the
 * weight the forward reads, so the optimizer updates the model in place. The U-Net must not have merged
 * adapters (LS_ERR). unet_backward then accumulates every tensor's gradient. */
int unet_full_grads_alloc(UNet *u, TrainSet *ts);
/* Free the gradient arena: the U-Net is frozen again (its weights keep their trained values). */
void unet_full_grads_free(UNet *u);

/* Mean squared error over n values, accumulated in double: returns mean((out − target)²) and writes
 * dout = ∂loss/∂out = 2·(out − target)/n (dout may be NULL). == torch.nn.functional.mse_loss. */
double unet_mse_loss(float *dout, const float *out, const float *target, size_t n);
/* The same with a per-position weight shared by the channels: Σ w[i mod hw]·(out − target)²/n (a sample's
 * n = C·hw values in C-major order, w of hw values). */
double unet_mse_loss_weighted(float *dout, const float *out, const float *target, const float *w, size_t hw,
                              size_t n);

#endif
