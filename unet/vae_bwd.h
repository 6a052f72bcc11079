/* vae_bwd.h — VAE (AutoencoderKL) backward (weight gradients) and the activations its training forwards
 * (vae_encode_train / vae_decode_train, vae.c) save for it: the groundwork for training a VAE / a small base
 * model from scratch.
 *
 * One step of VAE training on a batch (both halves; either may run alone):
 *     VaeActs acts = {0};
 *     TrainSet ts = {0};
 *     vae_full_grads_alloc(&vae, &ts);                         // once: every tensor gets a gradient
 *     trainset_zero_grads(&ts);                                // gradients accumulate
 *     vae_encode_train(&vae, &acts, moments, img, B, H, W);    // moments = [mean, logvar]
 *     ... z = mean + exp(logvar/2)·eps, the KL term's dmoments ...
 *     vae_decode_train(&vae, &acts, rec, z, B, h, w);
 *     ... dimg = ∂loss/∂rec ...
 *     vae_decode_backward(&vae, &acts, dz, dimg);              // decoder grads +=, dz = ∂loss/∂z
 *     ... dmoments += the reparameterisation's gradient from dz ...
 *     vae_encode_backward(&vae, &acts, dmoments);              // encoder grads +=
 *     vae_acts_free(&acts);
 *
 * A VaeActs holds one encode and one decode at a time, independently: vae_encode_train refills only the
 * encoder half (freeing an earlier one), vae_decode_train only the decoder half.
 *
 * Saved (blocks_bwd.h for the blocks): a copy of each half's input, conv_in's output, every resnet's and
 * sampler's output (each is the next layer's input), the mid block's three outputs, the resnets' norm
 * statistics and norm2 inputs, the mid attention's statistics and q/k/v, conv_norm_out's statistics, and
 * (encoder with quant_conv) conv_out's output. Norm outputs and the decoder's upsampled maps are recomputed.
 *
 * Gradients reach every Linear, Conv2d and Norm that has gradient buffers (vae_full_grads_alloc, or LoRA
 * hooks with gradient buffers on VAE layers); without them the weights are frozen and only input gradients
 * are computed (e.g. dz through a frozen decoder). Parameter gradients ACCUMULATE; dz is OVERWRITTEN.
 * Dims: B batch, H/W image size (multiples of f = vae_scale_factor), h = H/f, w = W/f latent size,
 * L = latent_channels. */
#ifndef LS_VAE_BWD_H
#define LS_VAE_BWD_H

#include "blocks_bwd.h" // defines: ResActs, VaeAttnActs
#include "trainset.h"   // defines: TrainSet
#include "vae.h"        // defines: Vae, VaeActs, VAE_MAX_LEVELS, vae_encode_train, vae_decode_train

/* Saved activations of one level (DownEncoderBlock2D / UpDecoderBlock2D). */
typedef struct {
    ResActs *res;       /* [n] */
    float **res_out;    /* [n] (B,cout,H,W) resnet outputs */
    float *sampler_out; /* (B,cout,Ho,Wo) downsample / upsample conv output, or NULL (no sampler) */
    int n;              /* resnets; 0: not filled */
    int H, W;           /* resolution of the level's resnets */
    int Ho, Wo;         /* resolution after the sampler (== H, W without one) */
} VaeLevelActs;

/* Saved activations of one half (encoder or decoder). */
typedef struct {
    int B, H, W;        /* batch and input resolution (encoder: the image's, decoder: the latent's) */
    int Hout, Wout;     /* output resolution (encoder: the latent's, decoder: the image's) */
    float *in;          /* copy of the input: image (B,in_channels,H,W) or z (B,L,h,w) */
    float *pq;          /* decoder: post_quant_conv output (B,L,h,w), conv_in's input; NULL without one */
    float *h_in;        /* (B,C,H,W) conv_in output (encoder C = block_out[0], decoder the last level's) */
    VaeLevelActs levels[VAE_MAX_LEVELS];
    ResActs mid_res[2];
    VaeAttnActs mid_attn;
    float *mid_out[3];  /* (B,Cl,·,·) outputs of mid resnet 0, the attention (NULL without one), resnet 1 */
    float *mean_out, *rstd_out; /* (B·G) conv_norm_out statistics */
    float *conv_out;    /* encoder: conv_out output (B,2L,h,w), quant_conv's input; NULL without quant_conv */
    size_t bytes;       /* bytes saved */
} VaeCoderActs;

struct VaeActs {
    VaeCoderActs enc, dec;
};

/* dmoments (B,2L,h,w) = ∂loss/∂moments for the encode that filled acts->enc. ACCUMULATES the gradient of
 * every encoder tensor and quant_conv that has buffers; the image needs no gradient. acts is not modified. */
void vae_encode_backward(const Vae *v, const VaeActs *acts, const float *dmoments);

/* dimg (B,out_channels,H,W) = ∂loss/∂img for the decode that filled acts->dec. ACCUMULATES the gradient of
 * every decoder tensor and post_quant_conv that has buffers; dz (B,L,h,w) = ∂loss/∂z is OVERWRITTEN (NULL:
 * not needed). acts is not modified. */
void vae_decode_backward(const Vae *v, const VaeActs *acts, float *dz, const float *dimg);

void vae_acts_free(VaeActs *acts);
/* Free one half's activations (and zero it). */
void vae_coder_acts_free(VaeCoderActs *a);

/* Full training of the VAE: make every VAE weight a private writable float32 copy (wt_make_writable; 335 MB
 * for SD1.5's VAE when it was an mmapped F32 file), give every Conv2d, Linear and Norm gradient buffers (one
 * zeroed arena of the VAE's size) and append every tensor to ts under its checkpoint key
 * ("encoder.down_blocks.0.resnets.0.conv1.weight", "quant_conv.bias", ...), value = the weight the forward
 * reads, so an optimizer updates the model in place. LS_ERR when a VAE layer has a merged adapter. */
int vae_full_grads_alloc(Vae *v, TrainSet *ts);
/* Free the gradient arena: the VAE is frozen again (its weights keep their trained values). */
void vae_full_grads_free(Vae *v);

#endif
