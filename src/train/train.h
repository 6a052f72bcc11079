/* train.h — the training loop (`lorastyle train`): a new kohya-initialised adapter on the U-Net's attention
 * projections (+ LoCon on resnet convs), trained with the DDPM noise-prediction loss and AdamW, written as a
 * kohya-format .safetensors that A1111, ComfyUI and `lorastyle generate --lora` load.
 *
 * Every random draw (VAE latent sample, timesteps, noise, noise offset, caption shuffle, epoch order, flips,
 * the adapter's init) comes from the portable Philox RNG on a stream keyed by (seed, micro-step, purpose), so
 * two runs with the same options write bit-identical adapters (given the same thread count for BLAS/OpenMP),
 * and a run resumed from a checkpoint continues exactly as the uninterrupted run.
 *
 * Output folder OUT:
 *   NAME.safetensors         the adapter (--method full: the model, NAME/ for a diffusers folder)
 *   NAME-stepNNNNNNNN.safetensors  the adapter every --save-every steps (kohya's name)
 *   checkpoint.safetensors   trained tensors + AdamW moments + step, data position, loss history (every
 *                            --checkpoint-every steps, on Ctrl-C and at the end; temp file + rename, so the
 *                            last good one survives a crash or a full disk); `--resume` continues from it
 *   loss.csv, loss.png       step,loss,lr,grad_norm,seconds and its curve (raw + smoothed + validation)
 *   validation.csv           step,validation_loss (--validation-split)
 *   samples/step_NNNNNN.png  sample grids: rows = adapter strengths, columns = sample prompts
 *   config.json              the effective options (the same keys `--config FILE` reads)
 *   report.txt               parameters, memory, sizes, time
 *   cache/                   VAE latent moments per (image, crop, flip, model) — reused by later runs */
#ifndef LS_TRAIN_H
#define LS_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lora.h" // defines: TRAIN_CKPT_FORMAT, train_is_checkpoint_format

typedef enum { LR_CONSTANT, LR_COSINE, LR_LINEAR } LrSchedule;
/* lora: LoRA/LoCon on the --targets modules (default all: attention, feed-forward, proj_in/out, convs);
 * locon: the same (the name older command lines and configs use);
 * full: every U-Net tensor (full fine-tuning; writes a model, not an adapter); adapter: bottleneck adapters
 * after attention and feed-forward (lora.h, LORA_ADAPTER). */
typedef enum { METHOD_LORA, METHOD_LOCON, METHOD_FULL, METHOD_ADAPTER } TrainMethod;
typedef enum { SAVE_FP32, SAVE_FP16, SAVE_BF16 } SavePrecision;

#define TRAIN_MAX_OWNED 32

typedef struct {
    const char *data_dir;    /* training folder (kohya N_name layout, datasets/README.md) */
    const char *model;       /* model folder or single file (default: the built-in models/base) */
    const char *config_dir, *tokenizer_dir; /* single-file model options (may be NULL) */
    const char *out;         /* output folder (default output/<name>) */
    const char *name;        /* adapter file name without extension (default basename of data_dir) */
    TrainMethod method;      /* lora (default) | locon (= lora) | full | adapter */
    int train_text_encoder;  /* also LoRA on the CLIP text encoder (lora/locon only) */
    float text_encoder_lr;   /* its learning rate; ≤ 0: = lr */
    SavePrecision save_precision; /* --method full: dtype of the written model (default fp32) */
    int steps;               /* optimizer steps (default 500; --epochs overrides) */
    int epochs;              /* > 0: steps = ceil(epochs · batches per epoch / grad_accum) */
    int batch;               /* batch size (default 1) */
    int grad_accum;          /* micro-batches per optimizer step (default 1) */
    float lr;                /* peak learning rate (default 1e-4) */
    int rank;                /* LoRA rank (default 4) */
    float alpha;             /* LoRA alpha; ≤ 0: = rank (scale 1, diffusers' convention; default) */
    int conv_rank;           /* LoCon rank on the convolution targets; < 0 (default): = rank; 0: no convolutions */
    float conv_alpha;        /* ≤ 0: = conv_rank */
    const char *targets;     /* groups attn,ff,proj,conv,all and/or module-path suffixes (lora_create); NULL: all */
    int resolution;          /* square side / bucket area side; 0: the model's default image size */
    int buckets;             /* aspect-ratio buckets (datasets/README.md) */
    int bucket_step, min_bucket, max_bucket, bucket_no_upscale; /* 0: dataset defaults */
    uint64_t seed;           /* default 0 */
    int clip_skip;           /* A1111 numbering, default 1 */
    const char *caption, *trigger; /* dataset options (datasets/README.md) */
    const char *caption_ext; /* caption file extension (default ".txt"; kohya's default is ".caption") */
    int shuffle_tags, keep_tokens, flip;
    float caption_dropout, tag_dropout; /* probabilities (kohya's caption_dropout_rate, caption_tag_dropout_rate) */
    LrSchedule lr_schedule;  /* default constant */
    int warmup;              /* linear warmup steps: lr·(s+1)/warmup for 0-based step s < warmup */
    float min_snr_gamma;     /* 0: off */
    float noise_offset;      /* 0: off */
    float max_grad_norm;     /* ≤ 0: no clipping (default 1.0) */
    int save_every;          /* also write NAME-step%08d.safetensors every N steps, kohya's name (0: off) */
    float validation_split;  /* > 0: hold out this fraction of the images for a validation loss */
    int validate_every;      /* validation loss every N steps (0: every checkpoint_every steps), at step 0
                              * and at the end */
    int checkpoint_every;    /* checkpoint every N steps (default 100; 0: only on Ctrl-C and at the end) */
    int samples;             /* sample grids (default 1: at the end, and every sample_every steps) */
    int sample_every;        /* 0: only at the end */
    const char *sample_prompts; /* file: one prompt per line, kohya options --n NEG --d SEED --s STEPS --l CFG */
    int sample_steps;        /* sampler steps per sample image (default 20) */
    const char *sample_strengths; /* comma list (default "0,0.5,1") */
    int style_curve;         /* captions for the style curve in the report (style distance to the training
                              * images at strengths 0, 0.5, 1); -1 (default): 4 at resolutions ≤ 128, else 0 */
    int cache;               /* on-disk latent cache (default 1) */
    const char *cache_dir;   /* default OUT/cache */
    int force;               /* overwrite an existing OUT */
    int resume;              /* continue from OUT/checkpoint.safetensors */
    int quiet;               /* no progress output (tests) */
    /* test hooks (not CLI options): fixed_t ≥ 0 uses that timestep for every sample; fixed_noise = 1 draws
     * the same noise at every step (the step-0 stream); stop_after > 0 acts as if Ctrl-C arrived after that
     * many steps of this run. Default -1 / 0 / 0. */
    int fixed_t, fixed_noise, stop_after;
    char *owned[TRAIN_MAX_OWNED]; /* strings read from JSON files (train_options_free) */
    int n_owned;
} TrainOptions;

typedef struct {
    char adapter_path[1024];
    int steps_done, start_step; /* start_step > 0: resumed */
    double first_loss, last_loss, mean_loss_first10, mean_loss_last10;
    int64_t trainable, unet_params;
    size_t peak_rss;
    int64_t adapter_bytes, unet_file_bytes;
    double wall_s, step_s;
    int cache_hits, cache_misses;
    int n_val;                 /* validation losses computed (step 0 included) */
    double val_first, val_last, val_best;
    int val_best_step;
} TrainResult;

/* TRAIN_CKPT_FORMAT, train_is_checkpoint_format: src/pipeline/lora.h (adapter loading recognises a checkpoint) */

#define TRAIN_INTERRUPTED (-3) /* train_run stopped by Ctrl-C (or stop_after) after saving a checkpoint */

void train_options_default(TrainOptions *o);
void train_options_free(TrainOptions *o); /* the owned strings */

/* Set one option by its command-line flag ("--lr") or its config.json key ("lr"); value is the text form
 * (NULL for a flag without value). LS_ERR naming the option. *consumed: whether value was used. */
int train_option_set(TrainOptions *o, const char *flag_or_key, const char *value, int *consumed);
/* Is `flag` a train option taking a value? (-1: unknown flag) */
int train_option_takes_value(const char *flag);
/* Read a JSON object of config.json keys into o (unknown keys and bad values: LS_ERR naming file and key). */
int train_options_load_json(TrainOptions *o, const char *path);
/* The effective options as JSON text (malloc'd), the keys train_options_load_json reads. */
char *train_options_to_json(const TrainOptions *o, int resolution);
/* The options that differ between two train_options_to_json texts, as "key: OLD → NEW" parts joined by
 * "; " into out (truncated to cap); returns how many differ. The run's own paths (output, cache_dir) are
 * not compared. */
int train_options_diff(const char *was, const char *now, char *out, size_t cap);

/* The default output folder: output/<name>, name defaulting to data_dir's last component. Returns buf. */
const char *train_default_out(const char *data_dir, const char *name, char *buf, size_t cap);

/* Run a whole training. LS_ERR with a one-line message (naming the file/folder/option) on bad input,
 * before any work where possible; TRAIN_INTERRUPTED after Ctrl-C (a checkpoint was saved); on a
 * non-finite loss the run stops (the last checkpoint written, if any, is kept). r may be NULL. */
int train_run(const TrainOptions *o, TrainResult *r);

/* "constant" | "cosine" | "linear" → LrSchedule; LS_ERR listing the names. */
int train_lr_schedule_from_name(const char *s, LrSchedule *out);
const char *train_lr_schedule_name(LrSchedule s);
const char *train_method_name(TrainMethod m); /* "lora", "locon", "full", "adapter" */
/* Learning rate at 0-based step s of n (warmup, then the schedule). */
float train_lr_at(const TrainOptions *o, int s);

/* Write a loss-curve PNG (raw losses as dots, their moving average as a line, labelled axes) of n ≥ 1
 * values (loss[i] = step i+1), with nv validation losses vloss[j] at steps vstep[j] (0..n; nv may be 0) as a
 * red line, atomically. LS_ERR naming path. (src/train/lossplot.c) */
/* Keep a CSV log's header and the rows of steps ≤ step (a resumed run appends after them). */
int train_csv_truncate(const char *path, int step);
int train_loss_plot(const char *path, const float *loss, int n, const int *vstep, const float *vloss, int nv,
                    const char *title);

/* The sub-command (src/app/cmd_train.c). */
int cmd_train(int argc, char **argv);

#endif
