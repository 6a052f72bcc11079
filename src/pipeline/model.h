/* model.h — a loaded SD-1.x model: U-Net, VAE, CLIP text encoder, tokenizer and scheduler config, from a
 * diffusers folder or a single-file LDM checkpoint (.safetensors); and `lorastyle init` presets. */
#ifndef LS_MODEL_H
#define LS_MODEL_H

#include "clip.h"        // defines: Clip
#include "safetensors.h" // defines: StFile
#include "scheduler.h"   // defines: SchedConfig
#include "tokenizer.h"   // defines: Tokenizer
#include "unet.h"        // defines: UNet
#include "vae.h"         // defines: Vae

typedef struct {
    char *path;         /* folder or file as given */
    char name[128];     /* basename without extension (A1111 "Model:") */
    int single_file;
    UNet unet;
    Vae vae;
    Clip clip;
    Tokenizer *tok;
    SchedConfig sched;
    StFile files[3];    /* unet, vae, text encoder (single file: only files[0]) */
    char *hash_path;    /* file whose sha256 is the model hash (single file, or unet weights) */
    char hash[11];      /* first 10 hex chars of sha256, computed on first use ("" until then) */
} Model;

/* Options for single-file checkpoints, which carry neither config nor tokenizer (all fields may be NULL):
 *  config_dir: a diffusers folder whose unet/, vae/, text_encoder/ config.json (and tokenizer/,
 *              scheduler/) describe the file (== diffusers from_single_file(config=...)); default SD1.5.
 *  tokenizer_dir: the tokenizer folder; default config_dir/tokenizer, then env LORASTYLE_TOKENIZER, then
 *              "<file's folder>/tokenizer". */
typedef struct {
    const char *config_dir;
    const char *tokenizer_dir;
} ModelOpts;

/* Load a diffusers folder or a single .safetensors file. LS_ERR with a message naming file and problem. */
int model_load(Model *m, const char *path, const ModelOpts *opts);
void model_free(Model *m);
/* A1111 short model hash (10 hex chars of sha256 of the checkpoint file). */
const char *model_hash(Model *m);

/* `lorastyle init`: write a randomly initialised model in diffusers layout.
 * preset "tiny" (fast tests; built-in tiny tokenizer) or "sd15" (SD1.5's exact shapes; tokenizer from
 * bpe_path, the open_clip bpe_simple_vocab_16e6.txt.gz, required). dtype: ST_F32 or ST_F16. */
/* The built-in base model's shapes (applied on top of the tiny preset's configs). */
void model_config_base(UNetConfig *uc, VaeConfig *vc, ClipConfig *cc);
int model_init_preset(const char *preset, const char *dir, uint64_t seed, StDtype dtype,
                      const char *bpe_path);

/* Write the loaded model as one LDM-layout .safetensors file (what A1111/ComfyUI load). */
int model_save_single_file(Model *m, const char *path, StDtype dtype);
/* Write the loaded model (its current weights: merged adapters, fine-tuned values) as a diffusers folder
 * out/ (created): configs and weights from memory, model_index.json, scheduler and tokenizer files copied
 * from the source folder. The source must be a diffusers folder (LS_ERR otherwise). dtype ST_F32/F16/BF16. */
int model_save_folder(Model *m, const char *out, StDtype dtype);
/* In the input's layout: a single file for a single-file model, else a diffusers folder. */
int model_save(Model *m, const char *out, StDtype dtype);

/* Total parameters of each component. */
int64_t model_param_count(const Model *m, int64_t *unet, int64_t *vae, int64_t *clip);

#endif
