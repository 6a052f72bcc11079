/* trainset.h — the tensors a training run updates, whatever the method (LoRA, LoCon, text-encoder LoRA,
 * full fine-tuning, bottleneck adapters): each is a value p and its gradient g (same length n, float32),
 * with a stable name (checkpoints store optimizer state by name). The optimizer and the checkpoint code in
 * src/train*.c only see this list; each method fills it from its own structures:
 *     lora_trainset(&lora, &ts)            (src/train/lora_train.c)
 *     unet_full_grads_alloc(&unet, &ts)    (unet/unet_bwd.c)
 * Gradients ACCUMULATE (the backward passes add into g): zero them before each step. */
#ifndef LS_TRAINSET_H
#define LS_TRAINSET_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h" // defines: StWriter

typedef struct {
    char *name;  /* owned copy, e.g. "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight" */
    float *p, *g; /* not owned: the method's value and gradient buffers */
    size_t n;
    float lr_mul; /* learning-rate multiplier (1 unless the method sets it, e.g. the text encoder's lr) */
} TrainTensor;

typedef struct {
    TrainTensor *t;
    int n, cap;
    int64_t n_params; /* Σ n */
} TrainSet;

void trainset_add(TrainSet *s, const char *name, float *p, float *g, size_t n);
void trainset_zero_grads(const TrainSet *s);
double trainset_grad_sumsq(const TrainSet *s); /* Σ g² in double */
void trainset_free(TrainSet *s);                /* frees the list and names, not the buffers */

/* AdamW (β1 0.9, β2 0.999, ε 1e-8, decoupled weight decay) state for every tensor of a TrainSet (same order):
 * first and second moments, fp32. */
#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8
typedef struct {
    float **m, **v;
    int n;
} AdamState;

void adam_init(AdamState *st, const TrainSet *ts); /* zeroed moments */
void adam_free(AdamState *st);
/* One AdamW step (t: 1-based step count) at learning rate lr0·lr_mul per tensor, on gradients scaled by
 * gscale (clipping), with weight decay wd; moment updates and the step in double, stored as float. */
void adamw_step(const TrainSet *ts, AdamState *st, float lr0, int t, float gscale, double wd);

/* A checkpoint's trained state: for each tensor in order, its value "p<sep><name>", its AdamW moments
 * "m<sep><name>" and "v<sep><name>" and, given ema (one buffer per tensor, or NULL), its moving average
 * "ema<sep><name>"; all float32, flat. */
void trainset_write_state(StWriter *w, const TrainSet *ts, const AdamState *st, float *const *ema, char sep);

#endif
