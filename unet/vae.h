/* vae.h — AutoencoderKL of SD-1.x (diffusers naming), configured from vae/config.json.
 * Encoder: image (B,3,H,W) in [-1,1] → moments (B,2·latent,H/f,W/f) = [mean, logvar].
 * Decoder: latents (B,latent,h,w), already divided by scaling_factor → image (B,3,h·f,w·f) in ~[-1,1].
 * f = 2^(levels-1) (8 for SD). Every VAE GroupNorm uses eps 1e-6. */
#ifndef LS_VAE_H
#define LS_VAE_H

#include "blocks.h" // defines: ResBlock, VaeAttn

#define VAE_MAX_LEVELS 6

typedef struct {
    int in_channels, out_channels, latent_channels;
    int n_levels;
    int block_out[VAE_MAX_LEVELS];
    int layers_per_block;
    int norm_num_groups;
    int sample_size;
    float scaling_factor;
    int mid_attention;  /* mid_block_add_attention */
    int use_quant_conv, use_post_quant_conv;
} VaeConfig;

void vae_config_sd15(VaeConfig *c);
void vae_config_tiny(VaeConfig *c);
int vae_config_load(VaeConfig *c, const char *path);
char *vae_config_to_json(const VaeConfig *c);
static inline int vae_scale_factor(const VaeConfig *c) { return 1 << (c->n_levels - 1); }

typedef struct {
    ResBlock *resnets;
    int n;
    Conv2d sample; /* encoder: downsample conv (stride 2, pad 0/1); decoder: upsample conv */
    int has_sample;
} VaeLevel;

typedef struct {
    Conv2d conv_in;
    VaeLevel levels[VAE_MAX_LEVELS];
    ResBlock mid_res[2];
    VaeAttn mid_attn;
    Norm norm_out;
    Conv2d conv_out;
} VaeCoder;

typedef struct {
    VaeConfig cfg;
    VaeCoder enc, dec;
    Conv2d quant_conv, post_quant_conv; /* 1×1: 2L→2L, L→L */
    WeightTable wt;
} Vae;

void vae_build(Vae *v, const VaeConfig *c);
void vae_free(Vae *v);

/* moments (B, 2·latent, h, w) with h = size after n_levels-1 downsamples. Returns h and w. */
void vae_encode(const Vae *v, float *moments, const float *img, int B, int H, int W, int *h, int *w);
/* img (B,out_channels,h·f,w·f) from z (B,latent,h,w) (z = latents / scaling_factor). */
void vae_decode(const Vae *v, float *img, const float *z, int B, int h, int w);

/* The same forwards for training: the same output bits, and acts (vae_bwd.h) receives what the backwards
 * read — vae_encode_train fills acts->enc, vae_decode_train acts->dec (each freeing an earlier one; acts
 * zero-initialised or from an earlier call). */
typedef struct VaeActs VaeActs;
void vae_encode_train(const Vae *v, VaeActs *acts, float *moments, const float *img, int B, int H, int W);
void vae_decode_train(const Vae *v, VaeActs *acts, float *img, const float *z, int B, int h, int w);

#endif
