/* train.h — the LoRA training loop (`lorastyle train`): a new kohya-initialised adapter on the U-Net's
 * attention projections (+ LoCon on resnet convs), trained with the DDPM noise-prediction loss and AdamW,
 * written as a kohya-format .safetensors that A1111, ComfyUI and `lorastyle generate --lora` load.
 *
 * Every random draw (VAE latent sample, timesteps, noise, noise offset, caption shuffle, epoch order, flips,
 * the adapter's init) comes from the portable Philox RNG on a stream keyed by (seed, step, purpose), so two
 * runs with the same options write bit-identical adapters (given the same thread count for BLAS/OpenMP).
 *
 * Output folder OUT: NAME.safetensors (the adapter), loss.csv (step,loss,lr,grad_norm,seconds),
 * config.json (the effective options), report.txt (parameters, memory, sizes, time). */
#ifndef LS_TRAIN_H
#define LS_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LR_CONSTANT, LR_COSINE, LR_LINEAR } LrSchedule;

typedef struct {
    const char *data_dir;    /* training folder (kohya N_name layout, datasets/README.md) */
    const char *model;       /* model folder or single file (default models/tiny) */
    const char *config_dir, *tokenizer_dir; /* single-file model options (may be NULL) */
    const char *out;         /* output folder (default output/<basename of data_dir>) */
    const char *name;        /* adapter file name without extension (default basename of data_dir) */
    int steps;               /* optimizer steps (default 500) */
    int batch;               /* batch size (default 1) */
    float lr;                /* peak learning rate (default 1e-4) */
    int rank;                /* LoRA rank (default 4) */
    float alpha;             /* LoRA alpha; ≤ 0: = rank (scale 1, diffusers' convention; default) */
    int conv_rank;           /* LoCon rank on resnet convs (0: off) */
    float conv_alpha;        /* ≤ 0: = conv_rank */
    int resolution;          /* square side; 0: the model's default image size */
    uint64_t seed;           /* default 0 */
    int clip_skip;           /* A1111 numbering, default 1 */
    const char *caption, *trigger; /* dataset options (datasets/README.md) */
    int shuffle_tags, keep_tokens, flip;
    LrSchedule lr_schedule;  /* default constant */
    int warmup;              /* linear warmup steps: lr·(s+1)/warmup for 0-based step s < warmup */
    float min_snr_gamma;     /* 0: off */
    float noise_offset;      /* 0: off */
    float max_grad_norm;     /* ≤ 0: no clipping (default 1.0) */
    int save_every;          /* also write the adapter every N steps (0: only at the end) */
    int force;               /* overwrite an existing OUT */
    int quiet;               /* no progress output (tests) */
    /* test hooks (not CLI options): fixed_t ≥ 0 uses that timestep for every sample; fixed_noise = 1 draws
     * the same noise at every step (the step-0 stream). Default -1 / 0. */
    int fixed_t, fixed_noise;
} TrainOptions;

typedef struct {
    char adapter_path[1024];
    int steps_done;
    double first_loss, last_loss, mean_loss_first10, mean_loss_last10;
    int64_t trainable, unet_params;
    size_t peak_rss;
    int64_t adapter_bytes, unet_file_bytes;
    double wall_s, step_s;
} TrainResult;

void train_options_default(TrainOptions *o);
/* Run a whole training. LS_ERR with a one-line message (naming the file/folder/option) on bad input,
 * before any work where possible; on a non-finite loss the run stops (the last adapter written, if any,
 * is kept). r may be NULL. */
int train_run(const TrainOptions *o, TrainResult *r);

/* "constant" | "cosine" | "linear" → LrSchedule; LS_ERR listing the names. */
int train_lr_schedule_from_name(const char *s, LrSchedule *out);
const char *train_lr_schedule_name(LrSchedule s);
/* Learning rate at 0-based step s of n (warmup, then the schedule). */
float train_lr_at(const TrainOptions *o, int s);

/* The sub-command (src/cmd_train.c). */
int cmd_train(int argc, char **argv);

#endif
