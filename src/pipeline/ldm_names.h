/* ldm_names.h — key mapping between diffusers names (what lorastyle's tables use) and the original
 * LDM/CompVis single-file checkpoint names (sd1-reference.md §4.3). Each function is a KeyMapFn. */
#ifndef LS_LDM_NAMES_H
#define LS_LDM_NAMES_H

#include "unet.h" // defines: UNetConfig
#include "vae.h"  // defines: VaeConfig

/* ctx: const UNetConfig*. "down_blocks.0.resnets.0.conv1.weight" →
 * "model.diffusion_model.input_blocks.1.0.in_layers.2.weight". */
int ldm_unet_key(const char *key, char *out, int cap, const void *ctx);
/* ctx: const VaeConfig*. "decoder.up_blocks.0.resnets.0.norm1.weight" →
 * "first_stage_model.decoder.up.3.block.0.norm1.weight". */
int ldm_vae_key(const char *key, char *out, int cap, const void *ctx);
/* ctx: const char* prefix, e.g. "cond_stage_model.transformer." (prepended). */
int ldm_prefix_key(const char *key, char *out, int cap, const void *ctx);
/* Old diffusers VAE attention names: to_q/to_k/to_v/to_out.0 → query/key/value/proj_attn. */
int vae_legacy_attn_key(const char *key, char *out, int cap, const void *ctx);

#endif
