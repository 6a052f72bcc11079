/* unet.h — UNet2DConditionModel of SD-1.x (diffusers naming), configured from unet/config.json.
 *
 * Supported config: down blocks CrossAttnDownBlock2D / DownBlock2D, up blocks CrossAttnUpBlock2D /
 * UpBlock2D, mid UNetMidBlock2DCrossAttn, act_fn silu, attention_head_dim (or num_attention_heads) int or
 * per-level list, use_linear_projection, transformer_layers_per_block (int). Any other value is a clear
 * error naming the config file and key. */
#ifndef LS_UNET_H
#define LS_UNET_H

#include "blocks.h" // defines: ResBlock, Transformer2D

#define UNET_MAX_LEVELS 6
#define UNET_MAX_LAYERS 32 /* layers_per_block, transformer_layers_per_block */
#define UNET_MAX_SKIPS (1 + UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1)) /* conv_in's, each block's, each sampler's */

typedef struct {
    int in_channels, out_channels;
    int n_levels;
    int block_out[UNET_MAX_LEVELS];   /* block_out_channels */
    int down_attn[UNET_MAX_LEVELS];   /* 1 = CrossAttnDownBlock2D */
    int up_attn[UNET_MAX_LEVELS];     /* 1 = CrossAttnUpBlock2D (up order) */
    int heads[UNET_MAX_LEVELS];       /* attention heads per level (down order) */
    int layers_per_block;
    int cross_attention_dim;
    int norm_num_groups;
    float norm_eps;
    int use_linear_projection;
    int transformer_layers;           /* transformer_layers_per_block */
    int sample_size;                  /* default latent side */
    int flip_sin_to_cos;
    float freq_shift;
    int mid_attn;                     /* mid block present (UNetMidBlock2DCrossAttn) */
} UNetConfig;

/* SD1.5's config (for single-file checkpoints and `init --preset sd15`). */
void unet_config_sd15(UNetConfig *c);
/* The built-in tiny preset. */
void unet_config_tiny(UNetConfig *c);
/* Parse a diffusers unet/config.json. LS_ERR naming path and key on bad/unsupported values. */
int unet_config_load(UNetConfig *c, const char *path);
/* Serialise as a diffusers-compatible config.json (malloc'd string). */
char *unet_config_to_json(const UNetConfig *c);

typedef struct {
    ResBlock *resnets;          /* layers_per_block */
    Transformer2D *attns;       /* layers_per_block, or NULL */
    Conv2d down;                /* downsamplers.0.conv (3×3 stride 2 pad 1) if has_down */
    int has_down, n;
} UNetDown;

typedef struct {
    ResBlock *resnets;          /* layers_per_block + 1 */
    Transformer2D *attns;       /* or NULL */
    Conv2d up;                  /* upsamplers.0.conv if has_up */
    int has_up, n;
} UNetUp;

typedef struct {
    UNetConfig cfg;
    Linear time_1, time_2;      /* time_embedding.linear_1 (C0→4C0), linear_2 (4C0→4C0) */
    Conv2d conv_in;             /* in→C0 */
    UNetDown down[UNET_MAX_LEVELS];
    ResBlock mid_res[2];
    Transformer2D mid_attn;
    UNetUp up[UNET_MAX_LEVELS];
    Norm norm_out;              /* conv_norm_out */
    Conv2d conv_out;            /* C0→out */
    WeightTable wt;
} UNet;

/* Build the module tree and register every tensor in u->wt (no data yet: wt_load or wt_init_random). */
void unet_build(UNet *u, const UNetConfig *c);
void unet_free(UNet *u);

/* eps (B,out,H,W) = unet(x (B,in,H,W), t (B) float timesteps, ctx (B,Tc,cross_attention_dim)).
 * H and W may be any size ≥ 1 (non-multiples of 2^(levels-1) upsample to the skip's size). */
void unet_forward(const UNet *u, float *out, const float *x, const float *t, const float *ctx, int B,
                  int H, int W, int Tc);

/* The same forward for training: the same output bits, and acts (unet_bwd.h) receives what unet_backward
 * reads. acts must be zero-initialised or from an earlier call (its buffers are freed and reallocated);
 * NULL is unet_forward. */
typedef struct UNetActs UNetActs;
void unet_forward_train(const UNet *u, UNetActs *acts, float *out, const float *x, const float *t,
                        const float *ctx, int B, int H, int W, int Tc);

#endif
