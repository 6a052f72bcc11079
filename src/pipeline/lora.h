/* lora.h — LoRA adapters at generation time: load the formats people share, attach to a model unmerged
 * (live strength, one scalar) or merged (zero per-step cost), combine several, merge into a checkpoint.
 *
 * Formats (sd1-reference.md §6):
 *  - kohya / A1111: lora_unet_<path with '_'>.{lora_down.weight, lora_up.weight, alpha} and lora_te_... (or
 *    lora_te1_..., as SDXL-era tools name the first text encoder; A1111 and ComfyUI read it on SD1 too);
 *    LoCon conv adapters (k×k down, 1×1 up). Missing or zero alpha means alpha = rank.
 *  - diffusers / PEFT: unet.<path>.lora_A.weight / lora_B.weight and text_encoder.<path>...; alpha from
 *    __metadata__["lora_adapter_metadata"] (<component>.lora_alpha) when present, else alpha = rank.
 *  - old diffusers attention-processor keys (…attn1.processor.to_q_lora.down.weight, …).
 *  One file may mix the kohya, PEFT and old diffusers key styles (module by module, as A1111 and ComfyUI
 *  read them: LORA_MIXED); a module given twice (in two styles) is an error at attach time.
 *  - LyCORIS LoHa (<kohya name>.hada_w1_a/w1_b/w2_a/w2_b, + hada_t1/t2 for CP-decomposed convs, alpha) and
 *    LoKr (.lokr_w1 or lokr_w1_a/w1_b, .lokr_w2 or lokr_w2_a/w2_b, + lokr_t2, alpha) under kohya names:
 *    ΔW = scale·(w1a·w1b)⊙(w2a·w2b), scale = alpha/rank (rank = hada_w1_b rows), and ΔW = scale·kron(W1, W2),
 *    scale = alpha/rank where a factor is low-rank (rank = lokr_w2_b's rows, else lokr_w1_b's) and 1 when
 *    both are full (lycoris.h, as LyCORIS, A1111 and ComfyUI). ΔW is materialised at load: a full-size
 *    float32 copy per module (as much memory as the adapted weights themselves; merged or not), applied
 *    unmerged as y += strength·ΔW·x (one full GEMM / conv per module and call, as the layer itself costs).
 *  - DoRA: kohya/LyCORIS `dora_scale` beside any of the above, diffusers/PEFT `lora_magnitude_vector`:
 *    D = m ⊙ V/‖V‖, V = W + ΔW, the norm per output row (PEFT; LyCORIS wd_on_out, dora_scale (out,1,…)) or
 *    per input channel (dora_scale (1,in,…): LyCORIS wd_on_out=False, A1111). The strength s enters as A1111
 *    and ComfyUI apply it: W(s) = W + s·(D − W), so strength 0 is the base and merged == unmerged. (At s = 1
 *    this is also LyCORIS's and PEFT's weight; at other s, diffusers' set_adapters puts s inside the norm —
 *    its strength 0 is m·W/‖W‖, not W — and LyCORIS's multiplier scales only the norm factor.) D − W is
 *    computed at attach against the layer's base weights (as A1111: other adapters merged into the same
 *    layer do not change it) and stored full size, as LoHa's ΔW.
 *  LoCon's CP-decomposed lora_mid, and other LyCORIS algorithms (IA³, OFT/BOFT, GLoRA, full diff), are
 *  refused with a clear "unsupported" message.
 *  - lorastyle bottleneck adapters (`train --method adapter`; Houlsby-style, layers.h): a nonlinear
 *    y ← y + s·up(gelu(down(y))) on the OUTPUT of every transformer block's attn1.to_out.0, attn2.to_out.0
 *    and ff.net.2, s = strength·alpha/r. Keys adapter_unet_<flat module path>.adapter_down.weight (r, C),
 *    .adapter_up.weight (C, r) and .alpha (scalar; missing or 0 = rank), float32, __metadata__
 *    {"lorastyle_method": "adapter", ...}. Loaded with --lora like LoRA files and run unmerged whatever
 *    the mode (a nonlinear update cannot be baked into a weight: lora_merge leaves such modules live, and
 *    the CLI refuses an explicit --lora-mode merged and `merge`). Other tools do not read this format.
 * Module names are matched exactly against the model's module table (never parsed back from '_'). */
#ifndef LS_LORA_H
#define LS_LORA_H

#include <string.h>

#include "layers.h"      // defines: LoraHook
#include "model.h"       // defines: Model
#include "safetensors.h" // defines: StFile
#include "trainset.h"    // defines: TrainSet

/* __metadata__ "format" of a training checkpoint (OUT/checkpoint.safetensors); other lorastyle versions
 * write "lorastyle-train-checkpoint-vN". train_is_checkpoint_format: is fmt (NULL: none) one of them? */
#define TRAIN_CKPT_FORMAT "lorastyle-train-checkpoint-v1"
#define TRAIN_CKPT_FORMAT_PREFIX "lorastyle-train-checkpoint"
static inline int train_is_checkpoint_format(const char *fmt) {
    return fmt && !strncmp(fmt, TRAIN_CKPT_FORMAT_PREFIX, sizeof TRAIN_CKPT_FORMAT_PREFIX - 1);
}

typedef enum { LORA_KOHYA, LORA_PEFT, LORA_DIFFUSERS_OLD, LORA_ADAPTER, LORA_MIXED } LoraFormat;
enum { LORA_UNET = 0, LORA_TE = 1 };

/* What a module holds (the LyCORIS algorithm): a low-rank pair (LoRA / LoCon), LoHa or LoKr factors. */
typedef enum { LORA_ALGO_LORA, LORA_ALGO_LOHA, LORA_ALGO_LOKR } LoraAlgo;

typedef struct {
    char *module;      /* model module path (diffusers naming), e.g. "mid_block.attentions.0.proj_in" */
    int component;     /* LORA_UNET or LORA_TE */
    LoraFormat format; /* key style of this module (never LORA_MIXED): kohya/adapter flat names or dotted paths */
    const char *prefix; /* kohya/adapter key prefix in the file ("lora_te1_", ...) for messages, or NULL */
    int rank, k;       /* k: kernel size of the down projection (1 for Linear) */
    int64_t in, out;
    float alpha;
    float *down, *up;  /* float32 copies: down (r, in·k·k), up (out, r) (LORA_ALGO_LORA only) */
    LoraAlgo algo;
    int flat;          /* 1: LoHa/LoKr whose factors do not say k: in holds in·k·k (and k 1) until attach */
    float *delta;      /* LoHa/LoKr: full ΔW (out, in·k·k), scale included (from load); NULL for LoRA */
    float *dora;       /* DoRA magnitude: out values (dora_axis 0) or in values (1), or NULL */
    float *dora_delta; /* with dora: D − W (out, in·k·k), from attach against the layer's base weights */
    int64_t n_dora;
    int dora_axis;     /* 0: per output row, 1: per input channel (lycoris.h) */
    float *ddown, *dup; /* training gradients, same shapes (lora_grads_alloc), or NULL */
    int bottleneck;    /* 1: a bottleneck adapter on the layer's output (LORA_ADAPTER): in == out == C */
    int as_conv;       /* 1: stored as 4-d (r,in,k,k)/(out,r,1,1) tensors: the layer is a Conv2d in the
                        * checkpoint (LoCon, or a 1×1 conv such as SD1.x's proj_in/proj_out) */
    void *layer;       /* Linear* or Conv2d* once attached */
    ModKind kind;
    LoraHook hook;
} LoraModule;

typedef struct {
    char *path;
    char name[128];        /* file name without .safetensors (the <lora:NAME:...> name) */
    char hash[13];         /* A1111/kohya short hash: sha256 of the data after the header, 12 hex */
    LoraFormat format;     /* the modules' key style, or LORA_MIXED when they differ */
    LoraModule *mods;
    int n_mods;
    int n_unet, n_te;      /* modules per component */
    int n_conv;            /* modules whose down projection is a k×k conv (LoCon) */
    int64_t n_params;
    float strength[2];     /* user multipliers: [LORA_UNET], [LORA_TE] */
    int attached, merged;
    StFile file;
} Lora;

/* Read and validate an adapter file: format, per-module rank/alpha, finite values, consistent shapes.
 * LS_ERR naming the file and key. Strengths start at 1. */
int lora_load(Lora *a, const char *path);
void lora_free(Lora *a); /* detaches first if attached */

/* Match every module against m and check shapes. An unmatched module is an error naming its key unless
 * lenient (then a warning and the module is dropped). Attached unmerged: strength changes are free. */
int lora_attach(Lora *a, Model *m, int lenient);
void lora_detach(Lora *a);

/* Set strengths. Unmerged: a scalar store. Merged: w += (new − old)·scale·up·down per module (one rank-r
 * GEMM each, no reload). */
void lora_set_strength(Lora *a, float unet, float te);

/* Bake the adapter into the weights at its current strength (bottleneck modules cannot be merged: they
 * stay live, reading the strength at run time; lora_is_mergeable says whether all of a can be) (the first merge into a layer copies its
 * weights, so the checkpoint mapping is never written); unmerge restores the original weights exactly. */
void lora_merge(Lora *a);
void lora_unmerge(Lora *a);
/* 1 unless a holds bottleneck modules (nonlinear: no weight can hold them). */
int lora_is_mergeable(const Lora *a);

/* ---- training (src/train/lora_train.c) ----
 * Gradient buffers for every module's down and up (shapes as down/up), shared with the attached hooks so
 * linear_backward / conv_backward accumulate into them. Call after lora_attach, on an unmerged adapter
 * (LS_ERR otherwise). Every module gets buffers: U-Net modules receive gradients from unet_backward,
 * text-encoder modules from clip_backward (textenc/clip_bwd.h; without it their buffers stay zero).
 * lora_free releases them. */
int lora_grads_alloc(Lora *a);
void lora_grads_zero(Lora *a);
/* Append every module that has gradient buffers to ts (down, then up; names = the kohya keys). */
void lora_trainset(Lora *a, TrainSet *ts);
/* Sum of squares of every gradient (double), e.g. for clipping or logging. */
double lora_grads_sumsq(const Lora *a);

/* A new, untrained kohya-format adapter for m's U-Net (attached by the caller with lora_attach), on the
 * Linear and Conv2d modules that `targets` selects: comma-separated entries, each a group or a module-path
 * suffix (matched at a '.' boundary, e.g. "attn2.to_k", "conv_shortcut", or a whole path):
 *    attn  attn1/attn2 to_q, to_k, to_v, to_out.0 of every transformer block (diffusers' LoRA script)
 *    ff    ff.net.0.proj, ff.net.2 (the feed-forward Linears)
 *    proj  proj_in, proj_out of every Transformer2D
 *    conv  the resnets' conv1/conv2 and downsamplers.0.conv / upsamplers.0.conv (3×3)
 *    all   attn,ff,proj,conv — also what NULL means (LoCon as kohya's/LyCORIS's presets)
 *  - a Linear gets LoRA (down (r,in), up (out,r)) of rank `rank`, alpha `alpha`;
 *  - a Conv2d gets LoCon (k×k down with the conv's stride/padding, 1×1 up) of rank conv_rank, alpha
 *    conv_alpha. conv_rank 0 means no convolutions: "all" then leaves them out, while an entry that names
 *    a Conv2d ("conv", "downsamplers.0.conv", ...) is an error (LS_ERR).
 *  An alpha ≤ 0 means alpha = rank (scale 1). An entry that matches no module is an error naming it and
 *  the groups. Modules are taken in the model's module table order whatever the order of `targets`.
 * kohya's initialisation: down ~ U(±1/√(in·k·k)) from the portable RNG (one stream per module, keyed by
 * seed and module index), up = 0 — so the attached adapter leaves the model's output unchanged.
 * Module names are the kohya flat names (lora_unet_ prefix left off), path "(new adapter)". */
int lora_create(Lora *a, Model *m, const char *targets, int rank, float alpha, int conv_rank, float conv_alpha,
                uint64_t seed);
/* Add text-encoder LoRA modules (kohya --train-text-encoder targets: self_attn.q_proj/k_proj/v_proj/
 * out_proj and mlp.fc1/fc2 of every CLIP encoder layer; 6·layers modules, component LORA_TE, kohya names
 * lora_te_text_model_encoder_layers_<i>_self_attn_q_proj ...) to a new adapter from lora_create, before
 * lora_attach. Rank, alpha (≤ 0: alpha = rank) and kohya's initialisation as lora_create (RNG streams
 * continue the module index, so U-Net modules are unchanged by adding these). */
int lora_add_te(Lora *a, Model *m, int rank, float alpha, uint64_t seed);
/* A new, untrained bottleneck adapter (train --method adapter) for m's U-Net: a module (down (r, C),
 * up (C, r), alpha, format LORA_ADAPTER) on the output of every transformer block's attn1.to_out.0,
 * attn2.to_out.0 and ff.net.2, C = that layer's output width. alpha ≤ 0 means alpha = rank. Initialised as
 * lora_create (down ~ U(±1/√C) from the portable RNG, one stream per module; up = 0), so the attached
 * adapter leaves the output unchanged. Attach it with lora_attach; train, list and save it as a LoRA. */
int lora_create_bottleneck(Lora *a, Model *m, int rank, float alpha, uint64_t seed);

/* Write a in kohya's format (lora_unet_<flat>.lora_down.weight / .lora_up.weight / .alpha, F32; conv
 * modules as 4-d tensors; a bottleneck adapter under its adapter_unet_ keys, with "lorastyle_method":
 * "adapter" added unless meta sets it) with __metadata__ pairs meta[2i] = key, meta[2i+1] = value; atomically
 * (temporary file + rename). LS_ERR naming path. */
int lora_save_kohya(const Lora *a, const char *path, const char *const *meta, int n_meta);

const char *lora_format_name(LoraFormat f);
/* What one module is: "LoRA", "LoCon" (k×k down), "LoHa", "LoKr", each + "+DoRA" with a magnitude, or
 * "bottleneck". */
const char *lora_module_kind(const LoraModule *m);
/* "LoHa 12, LoKr 3, LoRA+DoRA 2": module counts per kind, in first-seen order, into buf. */
void lora_kind_summary(const Lora *a, char *buf, int cap);

/* Parse "FILE[:SCALE[:TE_SCALE]]" (TE_SCALE defaults to SCALE). LS_ERR on a malformed scale. */
int lora_parse_spec(const char *spec, char *path, int cap, float *unet, float *te);

/* Remove A1111 <lora:NAME:TE[:UNET]> / <lora:NAME:te=X:unet=Y> tags from prompt (in place) and return
 * them: names[i] (malloc'd), te[i], unet[i]; at most cap. Returns the count or LS_ERR (malformed tag). */
int lora_extract_prompt_tags(char *prompt, char **names, float *te, float *unet, int cap);

#endif
