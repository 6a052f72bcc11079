/* train_internal.h — what the parts of `lorastyle train` share (not a public API): the Trainer (one
 * training run's state), its data cache and optimizer state, and the functions each file provides:
 *   src/train/train.c         options, setup, the step (forward/backward/AdamW), the loop, Ctrl-C
 *   src/train/train_data.c    latents and text embeddings: memory, the disk cache, the encoders
 *   src/train/train_ckpt.c    checkpoints (save, resume) and log truncation on resume
 *   src/train/train_eval.c    sample grids, the validation loss, the loss plot
 *   src/train/train_report.c  the output files (adapter or model) and report.txt */
#ifndef LS_TRAIN_INTERNAL_H
#define LS_TRAIN_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clip_bwd.h"   // defines: ClipActs, clip_encode_train, clip_backward
#include "common.h"     // defines: strdupCheck
#include "dataset.h"    // defines: Dataset, DatasetEpoch
#include "lora.h"       // defines: Lora
#include "model.h"      // defines: Model
#include "rng.h"        // defines: rng_mix64
#include "train.h"      // defines: TrainOptions, TrainResult
#include "trainset.h"   // defines: TrainSet
#include "unet_bwd.h"   // defines: UNetActs, unet_forward_train, unet_backward

/* Purposes of the RNG streams (seed, micro-step, purpose). */
enum { P_VAE = 1, P_TIMESTEP, P_NOISE, P_OFFSET, P_VAL };

#define ADAM_WD 1e-2
#define MAX_TEXT_CACHE 1024
#define MAX_SAMPLE_PROMPTS 16
#define MAX_STRENGTHS 16
#define VAL_T 4 /* validation timesteps per image: (k + 0.5)·T/4 */

typedef struct {
    Model *m;
    const Dataset *d;
    uint64_t seed;
    float **mom; /* [n_items·2] VAE moments (2C, h, w): mean then logvar, or NULL (not computed yet) */
    int *lh, *lw;
    const char *cache_dir; /* on-disk cache of the moments, or NULL */
    char model_hash[65];
    int hits, misses;
    int text_disk; /* also keep text embeddings in cache_dir (off when captions change every step) */
    int released;  /* the VAE and text encoder were given back (train_release_encoders): cache only */
    char **text; /* text-embedding cache: caption → (L, D) */
    float **ctx;
    int n_text;
    int clip_skip, L, D;
} DataCache;

typedef struct {
    char *prompt, *negative;
    uint64_t seed;
    int steps;
    float cfg;
    int sampler, karras; /* SamplerKind (scheduler.h) from --ss; sampler < 0: the default (Euler a) */
} SamplePrompt;

typedef struct {
    TrainOptions o; /* effective options (defaults resolved) */
    Model m;
    Dataset d;
    Lora lora;
    TrainSet ts;
    AdamState adam;
    DataCache dc;
    DatasetEpoch ep;
    int64_t ep_index; /* epoch `ep` holds (-1: none yet) */
    int bi;           /* next batch of ep */
    size_t acts_bytes; /* activations the last micro-step saved (U-Net and, training it, text encoder) */
    char **capv;     /* --train-text-encoder: the batch's captions [batch] */
    float *acp;
    int T, vpred, C, res;
    char *adapter, *csv_path, *ckpt_path, *plot_path, *samples_dir;
    FILE *csv;
    float *hist; /* loss per optimizer step [steps] */
    double ema, ema_w;
    int step, start_step; /* optimizer steps done; where this run started */
    int ckpt_step;        /* step of the last checkpoint written (0: none) */
    int report_done;      /* OUT/report.txt was there when the run started (the last run finished) */
    char *captxt;
    int capb;
    SamplePrompt sp[MAX_SAMPLE_PROMPTS];
    int n_sp;
    long long sp_mtime;          /* --sample-prompts file's modification time (ns) when last read */
    float strengths[MAX_STRENGTHS];
    int n_str;
    int tty;
    int *val_items, n_val_items; /* held-out items (--validation-split) */
    int *val_step;               /* validation losses so far: at step val_step[i] (0 = before training) */
    float *val_loss;
    int n_val;
    char *val_path;              /* OUT/validation.csv */
    FILE *val_csv;
    int64_t released_bytes;      /* VAE + text-encoder weights given back after caching (0: kept) */
    float curve[3];              /* style distance to the training images at strength 0, 0.5, 1 */
    int n_curve;                 /* captions the curve used (0: not measured) */
    int curve_same;              /* the strength-1 images equal the strength-0 ones, byte for byte */
    double started_at;           /* wall clock (Unix seconds) when train_run began: ss_training_started_at */
    char sd_sha[65], sd_legacy[13]; /* the base model's kohya hashes, "" until the first adapter is saved */
} Trainer;

/* The seed of the RNG stream for (seed, micro-step, purpose): every random draw of a run is keyed so. */
static inline uint64_t train_stream(uint64_t seed, uint64_t step, uint64_t purpose) {
    return rng_mix64(rng_mix64(seed) ^ rng_mix64(step * 16 + purpose));
}

/* Do the captions stay the same from step to step (no tag shuffling, no tag dropout; a dropped caption is
 * always "")? Then every caption's text embedding can be cached once. */
static inline int train_captions_fixed(const TrainOptions *o) { return !o->shuffle_tags && !(o->tag_dropout > 0); }

/* Noise a latent to timestep t: xt = √ᾱ·x0 + √(1−ᾱ)·noise, and the loss target (noise, or the velocity
 * √ᾱ·noise − √(1−ᾱ)·x0 for a v-prediction model); n values each. */
static inline void train_noise_to(const Trainer *T, int t, const float *x0, const float *noise, float *xt,
                                  float *target, size_t n) {
    float a = sqrtf(T->acp[t]), sg = sqrtf(1.0f - T->acp[t]);
    for (size_t q = 0; q < n; q++) {
        xt[q] = a * x0[q] + sg * noise[q];
        target[q] = T->vpred ? a * noise[q] - sg * x0[q] : noise[q];
    }
}

/* One number formatted as a malloc'd string (metadata values, labels). */
static inline char *train_fmt(const char *f, double v) {
    char b[64];
    snprintf(b, sizeof b, f, v);
    return strdupCheck(b);
}

/* Wall-clock Unix time for the adapter's kohya timestamps (ss_training_started_at/finished_at,
 * modelspec.date); SOURCE_DATE_EPOCH (reproducible-builds.org) fixes it, so two runs with one seed, or a run
 * and its --resume, write byte-identical files. */
static inline double train_wall_clock(void) {
    const char *e = getenv("SOURCE_DATE_EPOCH");
    if (e && *e) return strtod(e, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 once SIGINT/SIGTERM arrived during train_run (src/train/train.c). */
int train_interrupted(void);

/* train_data.c: x0 of item i (flip) = the latent sample with its fixed noise; the text embedding (L, D) of a
 * caption; every latent (and fixed caption) before the first step */
int datacache_latent(DataCache *c, int i, int flip, float *lat, int *h, int *w);
int datacache_ctx(DataCache *c, const char *text, float *out);
void datacache_free(DataCache *c);
int train_precache(Trainer *T);
/* After train_precache: when nothing will run the VAE or the text encoder again (no sample grids, no
 * text-encoder training, captions fixed and all in memory, not --method full, which saves them), give
 * their weights back. Sets T->released_bytes. */
void train_release_encoders(Trainer *T);

/* train_ckpt.c: OUT/checkpoint.safetensors (temp file + rename); resume refuses one that does not fit;
 * on resume, a CSV log keeps its header and the rows of steps ≤ step */
int train_ckpt_save(Trainer *T);
int train_ckpt_load(Trainer *T);

/* train_eval.c: --sample-prompts (or the first caption); a grid per call; the validation loss at T->step
 * (validation.csv + history); loss.png */
int train_load_sample_prompts(Trainer *T);
int train_write_samples(Trainer *T);
int train_record_validation(Trainer *T);
int train_write_plot(Trainer *T);
/* The style curve of the report (--style-curve): how many captions it uses for these options (0: off), and
 * the measurement (T->curve, T->n_curve, T->curve_same; a warning when the adapter has no measurable effect). */
int train_style_curve_n(const TrainOptions *o, int res);
int train_style_curve(Trainer *T);

/* train_report.c: the adapter (or model) at T->adapter, an intermediate one (steps_done < steps) under
 * kohya's NAME-step%08d name; a file's or folder's size; the method in words; report.txt */
int train_save_output(Trainer *T, int steps_done);
int64_t train_path_bytes(const char *path);
void train_describe_method(const Trainer *T, char *out, size_t cap);
int train_write_report(Trainer *T, TrainResult *r);

#endif
