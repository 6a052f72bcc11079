/* pipeline.h — text-to-image (== diffusers StableDiffusionPipeline, sd1-reference.md §5.8). */
#ifndef LS_PIPELINE_H
#define LS_PIPELINE_H

#include <stdint.h>

#include "image.h"     // defines: Image
#include "model.h"     // defines: Model
#include "scheduler.h" // defines: SamplerKind

typedef struct {
    const char *prompt;
    const char *negative;    /* "" or NULL: empty negative prompt */
    int steps;               /* 20 */
    float cfg;               /* 7.5; guidance is used when > 1 */
    SamplerKind sampler;     /* euler_a (A1111's default) */
    int karras;
    uint64_t seed;           /* image b of a batch uses seed + b */
    int width, height;       /* 0 → the model's default (unet sample_size · vae factor) */
    int batch;               /* 1 */
    int clip_skip;           /* A1111 convention: 1 = last layer, 2 = penultimate */
    const char *init_latent; /* optional .safetensors with the initial N(0,1) noise, (B,C,h,w) or (C,h,w) */
    const char *display_prompt; /* prompt line written to the PNG metadata (NULL: prompt) */
    const char *extra_params;   /* appended to the settings line, e.g. ", Lora hashes: \"a: 0123..\"" */
    /* progress callback, called after each step (may be NULL) */
    void (*on_step)(int step, int total, void *user);
    void *user;
    /* Interactive hooks (the viewer, gui/): all optional, zero/NULL = off, and they never change the result.
     * cancel: polled before every step and before the VAE decode; when it returns nonzero the run stops
     *   and pipeline_generate returns LS_CANCELLED (error "cancelled"), writing no images.
     * on_latents: after step k (k = preview_every, 2·preview_every, …, never after the last step), called
     *   with x0, the sampler's current estimate of image 0's final latents (C, h, w), in the same space as
     *   latents_out (model latents; pipeline_decode turns them into a preview image). preview_every ≤ 0:
     *   never. The buffer is only valid during the call. Both get `user`. */
    int (*cancel)(void *user);
    int preview_every;
    void (*on_latents)(int step, int total, const float *x0, int C, int h, int w, void *user);
} GenParams;

#define LS_CANCELLED (-2) /* pipeline_generate was stopped by GenParams.cancel */

void gen_params_init(GenParams *p);

/* Validate p against m (sizes, steps, cfg); LS_ERR with a clear message. Fills defaults for 0 sizes. */
int gen_params_check(const Model *m, GenParams *p);

/* Text embeddings of one prompt: ctx (L, D) with L = tokenizer max length. Warns when truncated. */
int pipeline_encode_prompt(Model *m, const char *text, int clip_skip, float *ctx);

/* Run the whole pipeline; images[0..batch-1] are allocated (image_free each). Optionally returns the final
 * latents (batch·C·h·w floats in the backend's pool: give them back with pool_free) in *latents_out. */
int pipeline_generate(Model *m, const GenParams *p, Image *images, float **latents_out);

/* VAE-decode B latents (B, C, h, w) in model-latent space (as latents_out / on_latents give them) into
 * images[0..B-1] (allocated; image_free each). */
void pipeline_decode(Model *m, const float *latents, int B, int h, int w, Image *images);

/* A1111 "parameters" text for image b of the batch (malloc'd). */
char *pipeline_parameters_text(Model *m, const GenParams *p, int b);

#endif
