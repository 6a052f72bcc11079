/* train.c — the training loop (see train.h): data, optimizer, checkpoints and resume, samples, report. */
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"        // defines: cli_parse_list
#include "clip_train.h" // defines: ClipActs, clip_encode_train, clip_backward
#include "common.h"     // defines: ls_set_error, ls_time, ls_peak_rss, ls_path_join
#include "dataset.h"    // defines: Dataset, dataset_scan, dataset_epoch, dataset_caption, dataset_cache_*
#include "grid.h"       // defines: grid_compose
#include "lora.h"       // defines: Lora, lora_create, lora_save_kohya, lora_trainset
#include "model.h"      // defines: Model, model_load, model_hash
#include "pipeline.h"   // defines: pipeline_encode_prompt, pipeline_generate
#include "rng.h"        // defines: rng_normal, rng_uniform
#include "safetensors.h" // defines: StWriter, StFile
#include "scheduler.h"  // defines: sched_alphas_cumprod
#include "trainset.h"   // defines: TrainSet
#include "unet_train.h" // defines: unet_forward_train, unet_backward, unet_mse_loss

/* Purposes of the RNG streams (seed, micro-step, purpose). */
enum { P_VAE = 1, P_TIMESTEP, P_NOISE, P_OFFSET, P_VAL };

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8
#define ADAM_WD 1e-2
#define MAX_TEXT_CACHE 1024
#define MAX_SAMPLE_PROMPTS 16
#define MAX_STRENGTHS 16
#define VAL_T 4 /* validation timesteps per image: (k + 0.5)·T/4 */
#define CKPT_FORMAT "lorastyle-train-checkpoint-v1"

/* Set by SIGINT/SIGTERM while train_run runs; read at step boundaries and by the sampler's cancel hook.
 * (A signal handler can only talk to the program through such a flag.) */
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static uint64_t stream(uint64_t seed, uint64_t step, uint64_t purpose) {
    return mix64(mix64(seed) ^ mix64(step * 16 + purpose));
}

int train_lr_schedule_from_name(const char *s, LrSchedule *out) {
    if (!strcmp(s, "constant")) *out = LR_CONSTANT;
    else if (!strcmp(s, "cosine")) *out = LR_COSINE;
    else if (!strcmp(s, "linear")) *out = LR_LINEAR;
    else return ls_set_error("--lr-scheduler: unknown schedule '%s' (constant, cosine, linear)", s);
    return LS_OK;
}

const char *train_lr_schedule_name(LrSchedule s) {
    return s == LR_COSINE ? "cosine" : s == LR_LINEAR ? "linear" : "constant";
}

float train_lr_at(const TrainOptions *o, int s) {
    if (s < o->warmup) return o->lr * (float)(s + 1) / (float)o->warmup;
    int span = o->steps - o->warmup;
    double p = span > 0 ? (double)(s - o->warmup) / span : 0.0;
    switch (o->lr_schedule) {
    case LR_COSINE: return (float)(o->lr * 0.5 * (1.0 + cos(M_PI * p)));
    case LR_LINEAR: return (float)(o->lr * (1.0 - p));
    default: return o->lr;
    }
}

/* ---------------- output folder ---------------- */

static const char *base_name(const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    const char *b = strrchr(buf, '/');
    return b ? b + 1 : buf;
}

const char *train_default_out(const char *data_dir, const char *name, char *buf, size_t cap) {
    char nb[1024];
    if (!name) name = base_name(data_dir, nb, sizeof nb);
    snprintf(buf, cap, "output/%s", name);
    return buf;
}

/* OUT must not exist (unless force or resume) and must be creatable: checked before any work. */
static int check_out(const char *out, int force, int resume) {
    struct stat st;
    if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return ls_set_error("%s: exists and is not a folder", out);
        if (!force && !resume)
            return ls_set_error("%s: output folder already exists (use --resume to continue its training, "
                                "--force to start over)", out);
        if (access(out, W_OK) != 0) return ls_set_error("%s: output folder is not writable", out);
        return LS_OK;
    }
    if (resume) return ls_set_error("%s: no such output folder to resume (run without --resume)", out);
    char anc[4096];
    snprintf(anc, sizeof anc, "%s", out);
    for (;;) {
        char *sl = strrchr(anc, '/');
        if (!sl) {
            snprintf(anc, sizeof anc, ".");
            break;
        }
        if (sl == anc) {
            anc[1] = 0;
            break;
        }
        *sl = 0;
        if (stat(anc, &st) == 0) break;
    }
    if (stat(anc, &st) != 0 || !S_ISDIR(st.st_mode))
        return ls_set_error("%s: cannot create the output folder (%s is not a folder)", out, anc);
    if (access(anc, W_OK) != 0)
        return ls_set_error("%s: cannot create the output folder (%s is not writable)", out, anc);
    return LS_OK;
}

/* ---------------- data: latents and text embeddings, computed once ---------------- */

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
    char **text; /* text-embedding cache: caption → (L, D) */
    float **ctx;
    int n_text;
    int clip_skip, L, D;
} DataCache;

/* The VAE moments of item i (flipped or not): from memory, the disk cache, or the encoder. hits/misses
 * count disk-cache lookups of latents and text embeddings together. */
static const float *get_moments(DataCache *c, int i, int flip, int *h, int *w) {
    int j = 2 * i + flip;
    if (!c->mom[j]) {
        const DatasetItem *it = &c->d->items[i];
        const Vae *v = &c->m->vae;
        int C = v->cfg.latent_channels, f = vae_scale_factor(&v->cfg);
        int hh = it->th / f, ww = it->tw / f;
        float *mom = mallocCheck((size_t)2 * C * hh * ww * sizeof(float));
        char key[65], *path = NULL;
        if (c->cache_dir && dataset_cache_key(c->d, i, flip, c->model_hash, key) == LS_OK) {
            path = dataset_cache_path(c->cache_dir, key);
            if (dataset_cache_read(path, key, mom, 2 * C, hh, ww) == 1) {
                c->hits++;
                c->mom[j] = mom, c->lh[j] = hh, c->lw[j] = ww;
                free(path);
                *h = hh, *w = ww;
                return mom;
            }
        }
        float *img = mallocCheck((size_t)3 * it->th * it->tw * sizeof(float));
        if (dataset_load_item(c->d, i, img, flip) < 0) {
            free(img), free(mom), free(path);
            return NULL;
        }
        int eh, ew;
        vae_encode(v, mom, img, 1, it->th, it->tw, &eh, &ew);
        free(img);
        LS_ASSERT(eh == hh && ew == ww);
        c->misses++;
        if (path && dataset_cache_write(path, key, it->path, mom, 2 * C, hh, ww) < 0) {
            ls_warn("%s; the latent cache is off for the rest of this run", ls_last_error());
            c->cache_dir = NULL;
        }
        free(path);
        c->mom[j] = mom, c->lh[j] = hh, c->lw[j] = ww;
    }
    *h = c->lh[j], *w = c->lw[j];
    return c->mom[j];
}

/* x0 = (mean + exp(0.5·clamp(logvar, −30, 20))·ε)·scaling_factor, ε fixed per (seed, item, flip): the same
 * latent sample whether the moments came from the encoder or the cache. lat: C·h·w floats. */
static int get_latent(DataCache *c, int i, int flip, float *lat, int *h, int *w) {
    const float *mom = get_moments(c, i, flip, h, w);
    if (!mom) return LS_ERR;
    const Vae *v = &c->m->vae;
    size_t n = (size_t)v->cfg.latent_channels * *h * *w;
    rng_normal(lat, n, stream(c->seed, (uint64_t)(2 * i + flip), P_VAE), 0);
    float sf = v->cfg.scaling_factor;
    for (size_t k = 0; k < n; k++) {
        float lv = mom[n + k] < -30.0f ? -30.0f : mom[n + k] > 20.0f ? 20.0f : mom[n + k];
        lat[k] = (mom[k] + expf(0.5f * lv) * lat[k]) * sf;
    }
    return LS_OK;
}

static int get_ctx(DataCache *c, const char *text, float *out) {
    size_t n = (size_t)c->L * c->D;
    for (int i = 0; i < c->n_text; i++)
        if (!strcmp(c->text[i], text)) {
            memcpy(out, c->ctx[i], n * sizeof(float));
            return LS_OK;
        }
    char key[65], *path = NULL;
    if (c->cache_dir && c->text_disk) {
        dataset_text_cache_key(c->model_hash, c->clip_skip, text, key);
        path = dataset_cache_path(c->cache_dir, key);
    }
    if (path && dataset_cache_read(path, key, out, 1, c->L, c->D) == 1) {
        c->hits++;
    } else {
        if (path) c->misses++;
        if (pipeline_encode_prompt(c->m, text, c->clip_skip, out) < 0) {
            free(path);
            return LS_ERR;
        }
        if (path && dataset_cache_write(path, key, text, out, 1, c->L, c->D) < 0) {
            ls_warn("%s; the text-embedding cache is off for the rest of this run", ls_last_error());
            c->text_disk = 0;
        }
    }
    free(path);
    if (c->n_text < MAX_TEXT_CACHE) {
        c->text[c->n_text] = strdup(text);
        c->ctx[c->n_text] = mallocCheck(n * sizeof(float));
        memcpy(c->ctx[c->n_text], out, n * sizeof(float));
        c->n_text++;
    }
    return LS_OK;
}

static void cache_free(DataCache *c) {
    if (c->mom)
        for (int j = 0; j < 2 * c->d->n_items; j++) free(c->mom[j]);
    for (int i = 0; i < c->n_text; i++) free(c->text[i]), free(c->ctx[i]);
    free(c->mom), free(c->lh), free(c->lw), free(c->text), free(c->ctx);
}

/* ---------------- optimizer ---------------- */

/* AdamW state for every tensor of the TrainSet (same order): first and second moments, fp32. */
typedef struct {
    float **m, **v;
    int n;
} AdamState;

static void adam_init(AdamState *st, const TrainSet *ts) {
    st->n = ts->n;
    st->m = callocCheck((size_t)ts->n, sizeof *st->m);
    st->v = callocCheck((size_t)ts->n, sizeof *st->v);
    for (int i = 0; i < ts->n; i++) {
        st->m[i] = callocCheck(ts->t[i].n, sizeof(float));
        st->v[i] = callocCheck(ts->t[i].n, sizeof(float));
    }
}

static void adam_free(AdamState *st) {
    for (int i = 0; i < st->n; i++) free(st->m[i]), free(st->v[i]);
    free(st->m), free(st->v);
    memset(st, 0, sizeof *st);
}

/* One AdamW step (t: 1-based step count) on gradients scaled by gscale (clipping). */
static void adamw_step(const TrainSet *ts, AdamState *st, float lr0, int t, float gscale) {
    double bc1 = 1.0 - pow(ADAM_B1, t), bc2 = 1.0 - pow(ADAM_B2, t);
    for (int i = 0; i < ts->n; i++) {
        const TrainTensor *q = &ts->t[i];
        float lr = lr0 * q->lr_mul;
        float *mm = st->m[i], *vv = st->v[i];
#pragma omp parallel for schedule(static) if (q->n > 65536)
        for (size_t j = 0; j < q->n; j++) {
            double g = (double)q->g[j] * gscale;
            double m = ADAM_B1 * mm[j] + (1.0 - ADAM_B1) * g;
            double v = ADAM_B2 * vv[j] + (1.0 - ADAM_B2) * g * g;
            mm[j] = (float)m, vv[j] = (float)v;
            double p = (double)q->p[j] * (1.0 - (double)lr * ADAM_WD); /* decoupled weight decay */
            p -= (double)lr * (m / bc1) / (sqrt(v / bc2) + ADAM_EPS);
            q->p[j] = (float)p;
        }
    }
}

/* ---------------- the trainer ---------------- */

typedef struct {
    char *prompt, *negative;
    uint64_t seed;
    int steps;
    float cfg;
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
    UNetActs acts;
    ClipActs cacts;  /* --train-text-encoder: the text encoder's saved activations */
    char **capv;     /* --train-text-encoder: the batch's captions [batch] */
    float *acp;
    int T, vpred, C, res;
    char *adapter, *csv_path, *ckpt_path, *plot_path, *samples_dir;
    FILE *csv;
    float *hist; /* loss per optimizer step [steps] */
    double ema, ema_w;
    int step, start_step; /* optimizer steps done; where this run started */
    int ckpt_step;        /* step of the last checkpoint written (0: none) */
    char *captxt;
    int capb;
    SamplePrompt sp[MAX_SAMPLE_PROMPTS];
    int n_sp;
    float strengths[MAX_STRENGTHS];
    int n_str;
    int tty;
    int *val_items, n_val_items; /* held-out items (--validation-split) */
    int *val_step;               /* validation losses so far: at step val_step[i] (0 = before training) */
    float *val_loss;
    int n_val;
    char *val_path;              /* OUT/validation.csv */
    FILE *val_csv;
} Trainer;

static char *fmt(const char *f, double v) {
    char b[64];
    snprintf(b, sizeof b, f, v);
    return strdup(b);
}

static int save_lora(Trainer *T, const char *path, int steps_done);

/* The output (adapter, or the model for --method full) at T->adapter; an intermediate save (--save-every,
 * not the last step) goes next to it under kohya's name NAME-step00000100(.safetensors) instead. */
static int save_adapter(Trainer *T, int steps_done) {
    const TrainOptions *o = &T->o;
    char *path = T->adapter;
    if (steps_done < o->steps) {
        const char *ext = strstr(T->adapter, ".safetensors");
        size_t stem = ext ? (size_t)(ext - T->adapter) : strlen(T->adapter);
        path = mallocCheck(stem + 40);
        snprintf(path, stem + 40, "%.*s-step%08d%s", (int)stem, T->adapter, steps_done, ext ? ext : "");
    }
    int rc;
    if (o->method == METHOD_FULL) { /* the whole model, in the input's layout */
        static const StDtype dt[] = {ST_F32, ST_F16, ST_BF16};
        rc = model_save(&T->m, path, dt[o->save_precision]);
    } else {
        rc = save_lora(T, path, steps_done);
    }
    if (path != T->adapter) free(path);
    return rc;
}

static int save_lora(Trainer *T, const char *path, int steps_done) {
    const TrainOptions *o = &T->o;
    const char *kv[128];
    char *own[64];
    int n = 0, no = 0;
#define KV(k, v) (kv[2 * n] = (k), kv[2 * n + 1] = (v), n++)
#define KVF(k, f, x) (own[no] = fmt((f), (x)), KV((k), own[no]), no++)
    KV("ss_network_module", o->method == METHOD_ADAPTER ? "lorastyle.adapter" : "networks.lora");
    KVF("ss_network_dim", "%.0f", (double)o->rank);
    KVF("ss_network_alpha", "%g", (double)o->alpha);
    char args[128];
    if (o->conv_rank > 0) {
        snprintf(args, sizeof args, "{\"conv_dim\": \"%d\", \"conv_alpha\": \"%g\"}", o->conv_rank,
                 (double)o->conv_alpha);
        KV("ss_network_args", args);
    }
    KVF("ss_learning_rate", "%g", (double)o->lr);
    KVF("ss_unet_lr", "%g", (double)o->lr);
    if (o->train_text_encoder) KVF("ss_text_encoder_lr", "%g", (double)(o->text_encoder_lr > 0 ? o->text_encoder_lr : o->lr));
    KV("ss_network_train_unet_only", o->train_text_encoder ? "False" : "True");
    KVF("ss_max_train_steps", "%.0f", (double)o->steps);
    KVF("ss_steps", "%.0f", (double)steps_done);
    KVF("ss_epoch", "%.0f", (double)(T->ep_index < 0 ? 0 : T->ep_index + 1));
    KVF("ss_gradient_accumulation_steps", "%.0f", (double)o->grad_accum);
    char resb[64];
    snprintf(resb, sizeof resb, "(%d, %d)", T->res, T->res);
    KV("ss_resolution", resb);
    KV("ss_enable_bucket", o->buckets ? "True" : "False");
    KVF("ss_num_train_images", "%.0f", (double)T->d.n_samples);
    KVF("ss_batch_size_per_device", "%.0f", (double)o->batch);
    char seedb[32];
    snprintf(seedb, sizeof seedb, "%llu", (unsigned long long)o->seed);
    KV("ss_seed", seedb);
    KV("ss_lr_scheduler", train_lr_schedule_name(o->lr_schedule));
    KVF("ss_lr_warmup_steps", "%.0f", (double)o->warmup);
    if (o->min_snr_gamma > 0) KVF("ss_min_snr_gamma", "%g", (double)o->min_snr_gamma);
    KVF("ss_noise_offset", "%g", (double)o->noise_offset);
    KVF("ss_max_grad_norm", "%g", (double)o->max_grad_norm);
    if (o->validation_split > 0) KVF("ss_validation_split", "%g", (double)o->validation_split);
    KV("ss_optimizer", "torch.optim.AdamW(weight_decay=0.01,betas=(0.9, 0.999),eps=1e-08)");
    KVF("ss_clip_skip", "%.0f", (double)o->clip_skip);
    KV("ss_flip_aug", o->flip ? "True" : "False");
    KV("ss_shuffle_caption", o->shuffle_tags ? "True" : "False");
    KVF("ss_keep_tokens", "%.0f", (double)o->keep_tokens);
    KVF("ss_caption_dropout_rate", "%g", (double)o->caption_dropout);
    KVF("ss_caption_tag_dropout_rate", "%g", (double)o->tag_dropout);
    KV("ss_v2", "False");
    KV("ss_base_model_version", "sd_v1");
    KV("ss_sd_model_name", T->m.name);
    KV("ss_sd_model_hash", model_hash(&T->m));
    char *tagf = dataset_tag_frequency_json(&T->d);
    KV("ss_tag_frequency", tagf);
    KV("ss_output_name", o->name);
    KV("lorastyle_method", o->method == METHOD_ADAPTER ? "adapter" : o->conv_rank > 0 ? "locon" : "lora");
    LS_ASSERT(n <= 64 && no <= 64);
#undef KV
#undef KVF
    int rc = lora_save_kohya(&T->lora, path, kv, n);
    free(tagf);
    for (int i = 0; i < no; i++) free(own[i]);
    return rc;
}

/* Checkpoint: every trained tensor ("p.<name>") and its AdamW moments ("m.", "v."), the loss history, and in
 * __metadata__ the step, the data position and the smoothed loss — everything else a resumed run needs is
 * a pure function of the options. Written to a temporary file and renamed (st_writer_save). */
static int ckpt_save(Trainer *T) {
    StWriter w;
    st_writer_init(&w);
    char key[700], buf[64];
    for (int i = 0; i < T->ts.n; i++) {
        const TrainTensor *t = &T->ts.t[i];
        int64_t sh[1] = {(int64_t)t->n};
        snprintf(key, sizeof key, "p.%s", t->name);
        st_writer_add(&w, key, ST_F32, 1, sh, t->p);
        snprintf(key, sizeof key, "m.%s", t->name);
        st_writer_add(&w, key, ST_F32, 1, sh, T->adam.m[i]);
        snprintf(key, sizeof key, "v.%s", t->name);
        st_writer_add(&w, key, ST_F32, 1, sh, T->adam.v[i]);
    }
    int64_t hs[1] = {T->step};
    st_writer_add(&w, "loss_history", ST_F32, 1, hs, T->hist);
    float *vh = NULL;
    if (T->n_val) { /* (step, loss) pairs */
        vh = mallocCheck((size_t)T->n_val * 2 * sizeof(float));
        for (int i = 0; i < T->n_val; i++) vh[2 * i] = (float)T->val_step[i], vh[2 * i + 1] = T->val_loss[i];
        int64_t vs[2] = {T->n_val, 2};
        st_writer_add(&w, "validation_history", ST_F32, 2, vs, vh);
    }
    st_writer_meta(&w, "format", CKPT_FORMAT);
#define META(k, f, v) (snprintf(buf, sizeof buf, f, v), st_writer_meta(&w, k, buf))
    META("step", "%d", T->step);
    META("epoch", "%lld", (long long)T->ep_index);
    META("batch_index", "%d", T->bi);
    META("ema", "%.17g", T->ema);
    META("ema_w", "%.17g", T->ema_w);
    META("seed", "%llu", (unsigned long long)T->o.seed);
    META("max_train_steps", "%d", T->o.steps);
#undef META
    int rc = st_writer_save(&w, T->ckpt_path);
    st_writer_free(&w);
    free(vh);
    if (rc < 0) {
        if (T->ckpt_step > 0)
            return ls_error_context("checkpoint at step %d not saved (the one from step %d is kept)", T->step,
                                    T->ckpt_step);
        return ls_error_context("checkpoint at step %d not saved", T->step);
    }
    T->ckpt_step = T->step;
    return LS_OK;
}

static int meta_int(const StFile *f, const char *k, long long *out) {
    const char *v = st_meta_get(f, k);
    char *end;
    if (!v) return ls_set_error("%s: not a lorastyle training checkpoint (no \"%s\")", f->path, k);
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (errno || *end || end == v) return ls_set_error("%s: bad \"%s\" value '%s'", f->path, k, v);
    return LS_OK;
}

static int ckpt_tensor(const StFile *f, const char *pre, const TrainTensor *t, float *dst) {
    char key[700];
    snprintf(key, sizeof key, "%s%s", pre, t->name);
    const StTensor *s = st_find(f, key);
    if (!s)
        return ls_set_error("%s: has no tensor %s (was it written with other --rank/--targets/--method?)", f->path,
                            key);
    if (s->numel != (int64_t)t->n)
        return ls_set_error("%s: %s has %lld values, this run expects %zu (other --rank or --conv-rank?)", f->path,
                            key, (long long)s->numel, t->n);
    return st_to_f32(f, s, dst, 1);
}

static int ckpt_load(Trainer *T) {
    StFile f;
    LS_TRY(st_open(&f, T->ckpt_path));
    int rc = LS_ERR;
    long long step, epoch, bi;
    const char *fmt_v = st_meta_get(&f, "format");
    if (!fmt_v || strcmp(fmt_v, CKPT_FORMAT)) {
        ls_set_error("%s: not a lorastyle training checkpoint (format %s)", f.path, fmt_v ? fmt_v : "missing");
        goto out;
    }
    if (meta_int(&f, "step", &step) < 0 || meta_int(&f, "epoch", &epoch) < 0 ||
        meta_int(&f, "batch_index", &bi) < 0)
        goto out;
    if (step < 1 || epoch < -1 || bi < 0) {
        ls_set_error("%s: inconsistent step/epoch values", f.path);
        goto out;
    }
    if (step >= T->o.steps) {
        ls_set_error("%s: the checkpoint is at step %lld and --steps is %d: nothing left to train (raise --steps "
                     "to continue)", f.path, step, T->o.steps);
        goto out;
    }
    for (int i = 0; i < T->ts.n; i++)
        if (ckpt_tensor(&f, "p.", &T->ts.t[i], T->ts.t[i].p) < 0 ||
            ckpt_tensor(&f, "m.", &T->ts.t[i], T->adam.m[i]) < 0 ||
            ckpt_tensor(&f, "v.", &T->ts.t[i], T->adam.v[i]) < 0)
            goto out;
    const StTensor *h = st_find(&f, "loss_history");
    if (!h || h->numel != step) {
        ls_set_error("%s: loss_history missing or not %lld long", f.path, step);
        goto out;
    }
    if (st_to_f32(&f, h, T->hist, 0) < 0) goto out;
    const StTensor *vt = st_find(&f, "validation_history");
    if (T->val_step && vt) {
        if (vt->ndim != 2 || vt->shape[1] != 2 || vt->shape[0] > step + 1) {
            ls_set_error("%s: validation_history has a bad shape", f.path);
            goto out;
        }
        float *vh = mallocCheck((size_t)vt->numel * sizeof(float));
        if (st_to_f32(&f, vt, vh, 0) < 0) {
            free(vh);
            goto out;
        }
        T->n_val = (int)vt->shape[0];
        for (int i = 0; i < T->n_val; i++) T->val_step[i] = (int)vh[2 * i], T->val_loss[i] = vh[2 * i + 1];
        free(vh);
    }
    const char *e = st_meta_get(&f, "ema"), *ew = st_meta_get(&f, "ema_w");
    T->ema = e ? strtod(e, NULL) : 0.0, T->ema_w = ew ? strtod(ew, NULL) : 0.0;
    T->step = T->start_step = T->ckpt_step = (int)step;
    T->ep_index = epoch, T->bi = (int)bi;
    if (epoch >= 0 && dataset_epoch(&T->d, T->o.seed, (uint64_t)epoch, T->o.batch, &T->ep) < 0) goto out;
    rc = LS_OK;
out:
    st_close(&f);
    return rc;
}

/* On resume: keep the header and the rows of steps ≤ the checkpoint's step, drop what came after it. */
static int csv_truncate(const char *path, int step) {
    size_t len;
    char *s = ls_read_file(path, &len);
    if (!s) return ls_set_error("%s: cannot read to resume: %s", path, ls_last_error());
    char *out = mallocCheck(len + 1);
    size_t o = 0;
    char *p = s;
    int first = 1;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (first || atoi(p) <= step) memcpy(out + o, p, l), o += l;
        first = 0;
        p += l;
    }
    int rc = ls_write_file_atomic(path, out, o);
    free(s), free(out);
    return rc;
}

static int write_plot(Trainer *T) {
    char title[256];
    snprintf(title, sizeof title, "%s - loss, %d steps", T->o.name, T->step);
    return train_loss_plot(T->plot_path, T->hist, T->step, T->val_step, T->val_loss, T->n_val, title);
}

/* ---------------- samples ---------------- */

/* kohya's sample-prompt line: "prompt --n negative --d seed --s steps --l cfg" (other options ignored). */
static int parse_sample_line(SamplePrompt *sp, char *line, uint64_t seed0, int steps0, const char *file, int ln) {
    memset(sp, 0, sizeof *sp);
    sp->seed = seed0, sp->steps = steps0, sp->cfg = 7.5f;
    char *opt = strstr(line, " --");
    char *rest = opt;
    if (opt) *opt = 0;
    sp->prompt = strdup(line);
    while (rest) {
        char *a = rest + 3; /* after " --" */
        char *next = strstr(a, " --");
        if (next) *next = 0;
        char k = a[0];
        const char *v = a[1] == ' ' ? a + 2 : "";
        if (k == 'n') sp->negative = strdup(v);
        else if (k == 'd') sp->seed = (uint64_t)strtoull(v, NULL, 10);
        else if (k == 's') sp->steps = atoi(v);
        else if (k == 'l') sp->cfg = (float)atof(v);
        if ((k == 's' && (sp->steps < 1 || sp->steps > 1000)) || (k == 'l' && !(sp->cfg >= 0 && sp->cfg < 100)))
            return ls_set_error("%s:%d: bad --%c value '%s'", file, ln, k, v);
        rest = next;
    }
    return LS_OK;
}

static int load_sample_prompts(Trainer *T) {
    const TrainOptions *o = &T->o;
    T->n_str = cli_parse_list("--sample-strengths", o->sample_strengths, T->strengths, MAX_STRENGTHS);
    if (T->n_str < 0) return LS_ERR;
    if (o->method == METHOD_FULL) T->strengths[0] = 1.0f, T->n_str = 1; /* no adapter to scale: one row */
    if (!o->sample_prompts) return LS_OK; /* the default prompt comes from the data (trainer_setup) */
    size_t len;
    char *s = ls_read_file(o->sample_prompts, &len);
    if (!s) return ls_error_context("--sample-prompts");
    int ln = 0, rc = LS_OK;
    for (char *p = s, *nl; p && *p && rc == LS_OK; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        ln++;
        size_t l = strlen(p);
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' ')) p[--l] = 0;
        if (!l || p[0] == '#') continue;
        if (T->n_sp == MAX_SAMPLE_PROMPTS) {
            ls_warn("%s: only the first %d prompts are sampled", o->sample_prompts, MAX_SAMPLE_PROMPTS);
            break;
        }
        rc = parse_sample_line(&T->sp[T->n_sp], p, 1234 + (uint64_t)T->n_sp, o->sample_steps, o->sample_prompts, ln);
        T->n_sp++;
    }
    free(s);
    if (rc == LS_OK && T->n_sp == 0) rc = ls_set_error("%s: no prompts in the file", o->sample_prompts);
    return rc;
}

static int sample_cancel(void *user) {
    (void)user;
    return g_interrupted != 0;
}

/* One grid: rows = adapter strengths, columns = prompts, at the training resolution. */
static int write_samples(Trainer *T) {
    int rows = T->n_str, cols = T->n_sp, rc = LS_OK;
    Image *cells = callocCheck((size_t)rows * cols, sizeof *cells);
    double t0 = ls_time();
    if (!T->o.quiet) {
        if (T->tty) fputc('\n', stderr);
        fprintf(stderr, "lorastyle: sampling %d images at step %d...\n", rows * cols, T->step);
    }
    for (int r = 0; r < rows && rc == LS_OK; r++) {
        if (T->lora.n_mods) lora_set_strength(&T->lora, T->strengths[r], T->strengths[r]);
        for (int c = 0; c < cols && rc == LS_OK; c++) {
            GenParams g;
            gen_params_init(&g);
            g.prompt = T->sp[c].prompt, g.negative = T->sp[c].negative, g.seed = T->sp[c].seed;
            g.steps = T->sp[c].steps, g.cfg = T->sp[c].cfg, g.clip_skip = T->o.clip_skip;
            g.width = g.height = T->res;
            g.cancel = sample_cancel;
            if (gen_params_check(&T->m, &g) < 0 || pipeline_generate(&T->m, &g, &cells[r * cols + c], NULL) < 0)
                rc = LS_ERR;
        }
    }
    if (T->lora.n_mods) lora_set_strength(&T->lora, 1.0f, 1.0f);
    if (rc == LS_OK) {
        char **rl = callocCheck((size_t)rows, sizeof *rl), title[256], fn[64];
        const char **cl = callocCheck((size_t)cols, sizeof *cl);
        for (int r = 0; r < rows; r++)
            rl[r] = T->o.method == METHOD_FULL ? strdup("fine-tuned") : fmt("strength %g", (double)T->strengths[r]);
        for (int c = 0; c < cols; c++) cl[c] = T->sp[c].prompt;
        snprintf(title, sizeof title, "%s - step %d", T->o.name, T->step);
        Image grid = {0};
        rc = grid_compose(&grid, cells, rows, cols, (const char *const *)rl, cl, title);
        if (rc == LS_OK) {
            snprintf(fn, sizeof fn, "step_%06d.png", T->step);
            char *path = ls_path_join(T->samples_dir, fn);
            const char *text[2] = {"lorastyle", title};
            rc = ls_mkdir_p(T->samples_dir);
            if (rc == LS_OK) rc = image_write_png(path, &grid, text, 1);
            if (rc == LS_OK && !T->o.quiet)
                fprintf(stderr, "lorastyle: wrote %s (%.1f s)\n", path, ls_time() - t0);
            free(path);
        }
        image_free(&grid);
        for (int r = 0; r < rows; r++) free(rl[r]);
        free(rl), free(cl);
    }
    for (int i = 0; i < rows * cols; i++) image_free(&cells[i]);
    free(cells);
    return rc;
}

/* ---------------- one optimizer step ---------------- */

/* The next batch of the epoch order (a new epoch when this one is used up). */
static int next_batch(Trainer *T, int *b0, int *B) {
    if (T->ep_index < 0 || T->bi >= T->ep.n_batches) {
        dataset_epoch_free(&T->ep);
        LS_TRY(dataset_epoch(&T->d, T->o.seed, (uint64_t)(T->ep_index + 1), T->o.batch, &T->ep));
        T->ep_index++, T->bi = 0;
    }
    *b0 = T->ep.batch_start[T->bi], *B = T->ep.batch_start[T->bi + 1] - *b0;
    T->bi++;
    return LS_OK;
}

/* Forward + backward of micro-batch u (gradients accumulate, the loss is scaled by 1/grad_accum).
 * *loss gets the micro-batch's (weighted) loss. */
static int micro_step(Trainer *T, uint64_t u, double *loss) {
    const TrainOptions *o = &T->o;
    int b0, B;
    LS_TRY(next_batch(T, &b0, &B));
    const DatasetItem *first = &T->d.items[T->ep.items[b0]];
    int f = vae_scale_factor(&T->m.vae.cfg), h = first->th / f, w = first->tw / f, C = T->C;
    size_t n = (size_t)C * h * w, nctx = (size_t)T->dc.L * T->dc.D;
    float *x0 = mallocCheck(B * n * sizeof(float)), *ctx = mallocCheck(B * nctx * sizeof(float));
    float *noise = mallocCheck(B * n * sizeof(float)), *xt = mallocCheck(B * n * sizeof(float));
    float *target = mallocCheck(B * n * sizeof(float)), *out = mallocCheck(B * n * sizeof(float));
    float *dout = mallocCheck(B * n * sizeof(float)), *tf = mallocCheck((size_t)B * sizeof(float));
    int *tt = mallocCheck((size_t)B * sizeof(int)), rc = LS_OK;
    for (int k = 0; k < B && rc == LS_OK; k++) {
        int item = T->ep.items[b0 + k], hh, ww;
        rc = get_latent(&T->dc, item, T->ep.flip[b0 + k], x0 + k * n, &hh, &ww);
        if (rc == LS_OK) {
            LS_ASSERT(hh == h && ww == w); /* batches never mix buckets */
            char *cap = T->capv ? T->capv[k] : T->captxt;
            if (dataset_caption(&T->d, item, o->seed, u, cap, T->capb + 1) < 0 ||
                (!T->capv && get_ctx(&T->dc, cap, ctx + k * nctx) < 0))
                rc = LS_ERR;
        }
    }
    if (rc == LS_OK && T->capv) /* the text encoder trains: encode every step, keeping its activations */
        rc = clip_encode_train(&T->m.clip, T->m.tok, &T->cacts, ctx, (const char *const *)T->capv, B,
                               o->clip_skip);
    if (rc == LS_OK) {
        uint64_t ns = o->fixed_noise ? 0 : u;
        float *uu = mallocCheck((size_t)B * sizeof(float));
        rng_uniform(uu, (size_t)B, stream(o->seed, ns, P_TIMESTEP), 0);
        for (int k = 0; k < B; k++) {
            int t = o->fixed_t >= 0 ? o->fixed_t : (int)(uu[k] * (float)T->T);
            tt[k] = t < 0 ? 0 : t >= T->T ? T->T - 1 : t;
            tf[k] = (float)tt[k];
        }
        free(uu);
        rng_normal(noise, B * n, stream(o->seed, ns, P_NOISE), 0);
        if (o->noise_offset != 0.0f) {
            float *off = mallocCheck((size_t)B * C * sizeof(float));
            rng_normal(off, (size_t)(B * C), stream(o->seed, ns, P_OFFSET), 0);
            for (int k = 0; k < B; k++)
                for (int c = 0; c < C; c++)
                    for (int q = 0; q < h * w; q++) noise[k * n + (size_t)c * h * w + q] += o->noise_offset * off[k * C + c];
            free(off);
        }
        for (int k = 0; k < B; k++) {
            float a = sqrtf(T->acp[tt[k]]), sg = sqrtf(1.0f - T->acp[tt[k]]);
            for (size_t q = 0; q < n; q++) {
                size_t id = k * n + q;
                xt[id] = a * x0[id] + sg * noise[id];
                target[id] = T->vpred ? a * noise[id] - sg * x0[id] : noise[id];
            }
        }
        unet_forward_train(&T->m.unet, &T->acts, out, xt, tf, ctx, B, h, w, T->dc.L);
        double l = 0.0;
        for (int k = 0; k < B; k++) {
            double lk = unet_mse_loss(dout + k * n, out + k * n, target + k * n, n), wk = 1.0;
            if (o->min_snr_gamma > 0) {
                double snr = T->acp[tt[k]] / (1.0 - T->acp[tt[k]]);
                double mn = snr < o->min_snr_gamma ? snr : o->min_snr_gamma;
                wk = T->vpred ? mn / (snr + 1.0) : mn / snr;
            }
            l += wk * lk / B;
            float sc = (float)(wk / B / o->grad_accum);
            for (size_t q = 0; q < n; q++) dout[k * n + q] *= sc;
        }
        *loss = l;
        if (isfinite(l)) {
            /* ∂loss/∂context (reusing ctx's buffer) only when the text encoder trains */
            unet_backward(&T->m.unet, &T->acts, T->capv ? ctx : NULL, dout);
            if (T->capv) clip_backward(&T->m.clip, &T->cacts, ctx);
        }
    }
    free(x0), free(ctx), free(noise), free(xt), free(target), free(out), free(dout), free(tf), free(tt);
    return rc;
}

/* Encode every latent (each image, both flips with --flip) and, when captions do not change from step to
 * step, every caption's text embedding before the first step — kohya's "caching latents" phase: the steps
 * then cost the same from the first one (steady it/s and ETA), and a bad image fails before training.
 * Values do not depend on the order they are computed in, so this changes no result. */
static int precache(Trainer *T) {
    const TrainOptions *o = &T->o;
    int flips = o->flip ? 2 : 1, total = 0, done = 0, hits0 = T->dc.hits;
    for (int i = 0; i < T->d.n_items; i++) total += T->d.items[i].repeats ? flips : 1; /* held out: unflipped */
    int texts = !T->capv && !o->shuffle_tags && !(o->tag_dropout > 0); /* else encoded as they come */
    double t0 = ls_time(), last = t0;
    float *ctx = texts ? mallocCheck((size_t)T->dc.L * T->dc.D * sizeof(float)) : NULL;
    int rc = LS_OK;
    for (int i = 0; i < T->d.n_items && rc == LS_OK; i++) {
        if (g_interrupted) {
            rc = ls_set_error("interrupted while caching latents (%d of %d done%s%s)", done, total,
                              T->dc.cache_dir ? "; they are kept in " : "", T->dc.cache_dir ? T->dc.cache_dir : "");
            break;
        }
        for (int f = 0; f < (T->d.items[i].repeats ? flips : 1) && rc == LS_OK; f++, done++) {
            int h, w;
            if (!get_moments(&T->dc, i, f, &h, &w)) rc = LS_ERR;
        }
        if (rc == LS_OK && texts) {
            if (dataset_caption(&T->d, i, o->seed, DATASET_CAPTION_PLAIN, T->captxt, T->capb + 1) < 0 ||
                get_ctx(&T->dc, T->captxt, ctx) < 0)
                rc = LS_ERR;
        }
        if (!o->quiet && (ls_time() - last > 1.0 || done == total)) {
            last = ls_time();
            fprintf(stderr, T->tty ? "\rlorastyle: caching latents %d/%d (%d from the disk cache) " : "lorastyle: "
                    "caching latents %d/%d (%d from the disk cache)\n", done, total, T->dc.hits - hits0);
        }
    }
    if (rc == LS_OK && texts && o->caption_dropout > 0) rc = get_ctx(&T->dc, "", ctx);
    free(ctx);
    if (!o->quiet && T->tty) fputc('\n', stderr);
    if (!o->quiet && rc == LS_OK && total > 0)
        fprintf(stderr, "lorastyle: %d latents ready in %.1f s\n", total, ls_time() - t0);
    return rc;
}

/* The validation loss: every held-out image (unflipped, its fixed latent sample) at VAL_T fixed timesteps
 * with fixed noise, plain MSE against the target (no min-SNR weight, no noise offset), averaged — the same
 * draws at every evaluation, so the curve shows the model, not the sampling. Inference forward, no
 * gradients. With --train-text-encoder the caption is re-encoded through the current text encoder. */
static int validate(Trainer *T, double *out) {
    const TrainOptions *o = &T->o;
    int f = vae_scale_factor(&T->m.vae.cfg), C = T->C, L = T->dc.L;
    size_t nctx = (size_t)L * T->dc.D;
    float *ctx = mallocCheck(VAL_T * nctx * sizeof(float)), tf[VAL_T];
    double sum = 0.0;
    int rc = LS_OK;
    for (int j = 0; j < T->n_val_items && rc == LS_OK; j++) {
        int i = T->val_items[j], h, w;
        const DatasetItem *it = &T->d.items[i];
        size_t n = (size_t)C * (it->th / f) * (it->tw / f);
        float *x0 = mallocCheck(n * sizeof(float)), *noise = mallocCheck(VAL_T * n * sizeof(float));
        float *xt = mallocCheck(VAL_T * n * sizeof(float)), *pred = mallocCheck(VAL_T * n * sizeof(float));
        rc = get_latent(&T->dc, i, 0, x0, &h, &w);
        if (rc == LS_OK && dataset_caption(&T->d, i, o->seed, DATASET_CAPTION_PLAIN, T->captxt, T->capb + 1) < 0)
            rc = LS_ERR;
        if (rc == LS_OK)
            rc = T->capv ? pipeline_encode_prompt(&T->m, T->captxt, o->clip_skip, ctx) : get_ctx(&T->dc, T->captxt, ctx);
        if (rc == LS_OK) {
            for (int k = 1; k < VAL_T; k++) memcpy(ctx + k * nctx, ctx, nctx * sizeof(float));
            rng_normal(noise, VAL_T * n, stream(o->seed, (uint64_t)i, P_VAL), 0);
            for (int k = 0; k < VAL_T; k++) {
                int t = (int)((k + 0.5) * T->T / VAL_T);
                float a = sqrtf(T->acp[t]), sg = sqrtf(1.0f - T->acp[t]);
                tf[k] = (float)t;
                for (size_t q = 0; q < n; q++) xt[k * n + q] = a * x0[q] + sg * noise[k * n + q];
            }
            unet_forward(&T->m.unet, pred, xt, tf, ctx, VAL_T, h, w, L);
            for (int k = 0; k < VAL_T; k++) {
                float a = sqrtf(T->acp[(int)tf[k]]), sg = sqrtf(1.0f - T->acp[(int)tf[k]]);
                double e = 0.0;
                for (size_t q = 0; q < n; q++) {
                    float target = T->vpred ? a * noise[k * n + q] - sg * x0[q] : noise[k * n + q];
                    double d = (double)pred[k * n + q] - target;
                    e += d * d;
                }
                sum += e / (double)n;
            }
        }
        free(x0), free(noise), free(xt), free(pred);
    }
    free(ctx);
    *out = sum / ((double)T->n_val_items * VAL_T);
    return rc;
}

/* Validate now and log it (validation.csv, the in-memory history for the plot and the report). */
static int record_validation(Trainer *T) {
    double v;
    LS_TRY(validate(T, &v));
    T->val_step[T->n_val] = T->step, T->val_loss[T->n_val] = (float)v, T->n_val++;
    fprintf(T->val_csv, "%d,%.6g\n", T->step, v);
    fflush(T->val_csv);
    if (!T->o.quiet && !T->tty) fprintf(stderr, "lorastyle: step %d  validation loss %.5f\n", T->step, v);
    return LS_OK;
}

/* ---------------- setup, loop, report ---------------- */

static void progress(Trainer *T, double t0) {
    if (T->o.quiet) return;
    int step = T->step, total = T->o.steps, done = step - T->start_step;
    double loss_ema = T->ema_w > 0 ? T->ema / T->ema_w : 0.0;
    double el = ls_time() - t0, rate = done / (el > 0 ? el : 1e-9), eta = (total - step) / (rate > 0 ? rate : 1e-9);
    if (T->tty) {
        int width = 30, fill = width * step / total;
        char val[32] = "";
        if (T->n_val) snprintf(val, sizeof val, "  val %.4f", (double)T->val_loss[T->n_val - 1]);
        fprintf(stderr, "\r[%.*s%*s] step %d/%d  loss %.4f%s  %.2f it/s  ETA %.0fs ", fill,
                "==============================", width - fill, "", step, total, loss_ema, val, rate, eta);
        if (step == total) fputc('\n', stderr);
        fflush(stderr);
    } else {
        int every = total >= 10 ? total / 10 : 1;
        if (step % every == 0 || step == total)
            fprintf(stderr, "lorastyle: step %d/%d  loss %.4f  %.2f it/s  ETA %.0fs\n", step, total, loss_ema, rate,
                    eta);
    }
}

static void human_bytes(double b, char *out, int cap) {
    if (b >= 1 << 30) snprintf(out, (size_t)cap, "%.2f GiB", b / (1 << 30));
    else if (b >= 1 << 20) snprintf(out, (size_t)cap, "%.2f MiB", b / (1 << 20));
    else snprintf(out, (size_t)cap, "%.1f KiB", b / 1024);
}

/* Options that only make sense with some methods: a clear error instead of silently ignoring them. */
static int check_method_options(const TrainOptions *o) {
    const char *m = train_method_name(o->method);
    if (o->method == METHOD_FULL || o->method == METHOD_ADAPTER) {
        if (o->conv_rank > 0)
            return ls_set_error("--conv-rank: LoCon modules go with --method lora/locon, not --method %s", m);
        if (o->targets) return ls_set_error("--targets: LoRA target modules go with --method lora/locon, not %s", m);
        if (o->train_text_encoder)
            return ls_set_error("--train-text-encoder: text-encoder LoRA goes with --method lora/locon, not %s", m);
    }
    if (o->text_encoder_lr > 0 && !o->train_text_encoder)
        return ls_set_error("--text-encoder-lr: only used with --train-text-encoder");
    if (o->save_precision != SAVE_FP32 && o->method != METHOD_FULL)
        return ls_set_error("--save-precision: only for --method full (adapters are saved in float32)");
    return LS_OK;
}

/* Resolve defaults that depend on each other or on the data (name, OUT, alphas, LoCon, epochs). */
static void resolve_options(TrainOptions *o, char *nb, size_t nbcap, char *ob, size_t obcap) {
    if (!o->name) o->name = base_name(o->data_dir, nb, nbcap);
    if (!o->out) o->out = train_default_out(o->data_dir, o->name, ob, obcap);
    if (o->method == METHOD_LOCON && o->conv_rank == 0) o->conv_rank = o->rank;
    if (!(o->alpha > 0)) o->alpha = (float)o->rank;
    if (o->conv_rank > 0 && !(o->conv_alpha > 0)) o->conv_alpha = (float)o->conv_rank;
    if (o->conv_rank == 0) o->conv_alpha = 0;
}

static int trainer_setup(Trainer *T) {
    TrainOptions *o = &T->o;
    ModelOpts mo = {o->config_dir, o->tokenizer_dir};
    LS_TRY(model_load(&T->m, o->model, &mo));
    int f = vae_scale_factor(&T->m.vae.cfg);
    T->res = o->resolution ? o->resolution : T->m.unet.cfg.sample_size * f;
    o->resolution = T->res;
    int ufac = f << (T->m.unet.cfg.n_levels - 1);
    if (T->res % ufac) return ls_set_error("--resolution %d: must be a multiple of %d for this model", T->res, ufac);
    DatasetOptions dopt;
    dataset_options_default(&dopt);
    dopt.resolution = T->res;
    dopt.buckets = o->buckets;
    if (o->bucket_step) dopt.bucket_step = o->bucket_step;
    if (o->min_bucket) dopt.min_bucket = o->min_bucket;
    if (o->max_bucket) dopt.max_bucket = o->max_bucket;
    dopt.bucket_no_upscale = o->bucket_no_upscale;
    if (o->buckets && dopt.bucket_step % ufac)
        return ls_set_error("--bucket-step %d: must be a multiple of %d for this model", dopt.bucket_step, ufac);
    dopt.caption = o->caption, dopt.trigger = o->trigger;
    dopt.shuffle_tags = o->shuffle_tags, dopt.keep_tokens = o->keep_tokens, dopt.flip = o->flip;
    dopt.caption_dropout = o->caption_dropout, dopt.tag_dropout = o->tag_dropout;
    dopt.quiet = o->quiet;
    LS_TRY(dataset_check_options(&dopt));
    if (o->samples) LS_TRY(load_sample_prompts(T)); /* a bad prompt file fails before any work */
    LS_TRY(dataset_scan(&T->d, o->data_dir, &dopt));
    if (o->validation_split > 0) {
        LS_TRY(dataset_hold_out(&T->d, o->validation_split, o->seed, &T->val_items, &T->n_val_items));
        T->val_step = mallocCheck((size_t)(o->steps + 2) * sizeof(int));
        T->val_loss = mallocCheck((size_t)(o->steps + 2) * sizeof(float));
    }
    if (!o->quiet) dataset_report(&T->d, stderr);
    if (o->epochs > 0) {
        DatasetEpoch e0 = {0};
        LS_TRY(dataset_epoch(&T->d, o->seed, 0, o->batch, &e0));
        int64_t micro = (int64_t)o->epochs * e0.n_batches;
        dataset_epoch_free(&e0);
        int64_t steps = (micro + o->grad_accum - 1) / o->grad_accum;
        if (steps > 100000000) return ls_set_error("--epochs %d: too many steps (%lld)", o->epochs, (long long)steps);
        o->steps = (int)steps;
    }
    if (T->val_step) { /* --epochs may have changed the step count */
        T->val_step = realloc(T->val_step, (size_t)(o->steps + 2) * sizeof(int));
        T->val_loss = realloc(T->val_loss, (size_t)(o->steps + 2) * sizeof(float));
        LS_ASSERT(T->val_step && T->val_loss);
    }
    if (o->warmup > o->steps) return ls_set_error("--warmup %d: more than the %d training steps", o->warmup, o->steps);
    T->capb = dataset_caption_bound(&T->d, 0);
    for (int i = 1; i < T->d.n_items; i++) T->capb = LS_MAX(T->capb, dataset_caption_bound(&T->d, i));
    T->captxt = mallocCheck((size_t)T->capb + 1);
    if (o->samples && T->n_sp == 0) { /* the first image's caption (with the trigger; unshuffled) */
        char *cap = mallocCheck((size_t)T->capb + 1);
        dataset_caption(&T->d, 0, o->seed, DATASET_CAPTION_PLAIN, cap, T->capb + 1);
        T->sp[0] = (SamplePrompt){cap, NULL, 1234, o->sample_steps, 7.5f};
        T->n_sp = 1;
    }

    if (o->method == METHOD_FULL) {
        LS_TRY(unet_full_grads_alloc(&T->m.unet, &T->ts));
    } else {
        if (o->method == METHOD_ADAPTER) LS_TRY(lora_create_bottleneck(&T->lora, &T->m, o->rank, o->alpha, o->seed));
        else
            LS_TRY(lora_create(&T->lora, &T->m, o->targets, o->rank, o->alpha, o->conv_rank, o->conv_alpha, o->seed));
        if (o->train_text_encoder) LS_TRY(lora_add_te(&T->lora, &T->m, o->rank, o->alpha, o->seed));
        LS_TRY(lora_attach(&T->lora, &T->m, 0));
        LS_TRY(lora_grads_alloc(&T->lora));
        lora_trainset(&T->lora, &T->ts);
    }
    if (o->train_text_encoder) {
        float mul = o->text_encoder_lr > 0 ? o->text_encoder_lr / o->lr : 1.0f;
        for (int i = 0; i < T->ts.n; i++)
            if (!strncmp(T->ts.t[i].name, "lora_te_", 8)) T->ts.t[i].lr_mul = mul;
        T->capv = callocCheck((size_t)o->batch, sizeof *T->capv);
        for (int k = 0; k < o->batch; k++) T->capv[k] = mallocCheck((size_t)T->capb + 1);
    }
    adam_init(&T->adam, &T->ts);

    DataCache *dc = &T->dc;
    dc->m = &T->m, dc->d = &T->d, dc->seed = o->seed, dc->clip_skip = o->clip_skip;
    dc->L = tokenizer_max_length(T->m.tok), dc->D = T->m.clip.cfg.hidden;
    dc->mom = callocCheck((size_t)2 * T->d.n_items, sizeof *dc->mom);
    dc->lh = callocCheck((size_t)2 * T->d.n_items, sizeof(int));
    dc->lw = callocCheck((size_t)2 * T->d.n_items, sizeof(int));
    dc->text = callocCheck(MAX_TEXT_CACHE, sizeof *dc->text);
    dc->ctx = callocCheck(MAX_TEXT_CACHE, sizeof *dc->ctx);
    snprintf(dc->model_hash, sizeof dc->model_hash, "%s", model_hash(&T->m));
    if (o->cache) dc->cache_dir = o->cache_dir;
    dc->text_disk = !o->shuffle_tags && !(o->tag_dropout > 0); /* captions that change every step: memory only */
    /* (with --train-text-encoder the context is encoded every step: the text cache is not used) */

    T->T = T->m.sched.num_train_timesteps;
    T->acp = mallocCheck((size_t)T->T * sizeof(float));
    sched_alphas_cumprod(&T->m.sched, T->acp);
    T->vpred = T->m.sched.prediction == PRED_V;
    T->C = T->m.vae.cfg.latent_channels;
    T->hist = callocCheck((size_t)o->steps, sizeof(float));
    T->ep_index = -1;
    return LS_OK;
}

static void trainer_free(Trainer *T) {
    if (T->csv) fclose(T->csv);
    if (T->val_csv) fclose(T->val_csv);
    free(T->val_items), free(T->val_step), free(T->val_loss), free(T->val_path);
    unet_acts_free(&T->acts);
    clip_acts_free(&T->cacts);
    if (T->capv)
        for (int k = 0; k < T->o.batch; k++) free(T->capv[k]);
    free(T->capv);
    dataset_epoch_free(&T->ep);
    if (T->dc.d) cache_free(&T->dc);
    adam_free(&T->adam);
    trainset_free(&T->ts);
    lora_free(&T->lora);
    dataset_free(&T->d);
    model_free(&T->m);
    for (int i = 0; i < T->n_sp; i++) free(T->sp[i].prompt), free(T->sp[i].negative);
    free(T->adapter), free(T->csv_path), free(T->ckpt_path), free(T->plot_path), free(T->samples_dir);
    free(T->captxt), free(T->acp), free(T->hist);
}

/* Bytes of a file, or of every file under a folder (a full fine-tune's diffusers output). */
static int64_t path_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return (int64_t)st.st_size;
    int64_t sum = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *sub = ls_path_join(path, e->d_name);
        sum += path_bytes(sub);
        free(sub);
    }
    closedir(d);
    return sum;
}

/* What was trained, in words: "LoRA rank 4 alpha 4 on 32 modules (...)" */
static void describe_method(const Trainer *T, char *out, size_t cap) {
    const TrainOptions *o = &T->o;
    const Lora *l = &T->lora;
    if (o->method == METHOD_FULL)
        snprintf(out, cap, "full fine-tuning of the U-Net (%d tensors, saved as %s)", T->ts.n,
                 o->save_precision == SAVE_FP16 ? "fp16" : o->save_precision == SAVE_BF16 ? "bf16" : "fp32");
    else if (o->method == METHOD_ADAPTER)
        snprintf(out, cap, "bottleneck adapters rank %d alpha %g on %d transformer layers (lorastyle format)", o->rank,
                 (double)o->alpha, l->n_mods);
    else
        snprintf(out, cap, "%s rank %d alpha %g on %d modules (%d U-Net, %d LoCon, %d text encoder), kohya format",
                 o->conv_rank > 0 ? "LoCon" : "LoRA", o->rank, (double)o->alpha, l->n_mods, l->n_unet, l->n_conv,
                 l->n_te);
}

static int write_report(Trainer *T, TrainResult *r) {
    const TrainOptions *o = &T->o;
    char ab[32], ub[32], pk[32], sb[32], rep[4096], resumed[96] = "", meth[256];
    human_bytes((double)r->adapter_bytes, ab, sizeof ab);
    human_bytes((double)r->unet_file_bytes, ub, sizeof ub);
    human_bytes((double)r->peak_rss, pk, sizeof pk);
    human_bytes(3.0 * 4.0 * (double)r->trainable, sb, sizeof sb); /* gradient + AdamW m and v, float32 */
    describe_method(T, meth, sizeof meth);
    if (T->start_step > 0) snprintf(resumed, sizeof resumed, ", resumed at step %d", T->start_step);
    int64_t unet_p, clip_p, base = 0;
    model_param_count(&T->m, &unet_p, NULL, &clip_p);
    base = unet_p + (T->lora.n_te ? clip_p : 0);
    snprintf(rep, sizeof rep,
             "lorastyle train report\n"
             "output:               %s\n"
             "method:               %s\n"
             "trainable parameters: %lld (%.4f%% of the %s's %lld)\n"
             "output size:          %s (%lld bytes%s) vs the base U-Net checkpoint %s (%lld bytes, %s)\n"
             "peak memory (RSS):    %s (saved activations %.1f MiB; gradients + AdamW state %s)\n"
             "steps:                %d (batch %d x %d accumulated, resolution %d%s, %lld samples per epoch%s)\n"
             "disk cache:           %d hits, %d computed (latents%s)%s%s\n"
             "loss:                 first %.5f, mean of first 10 %.5f, mean of last 10 %.5f, last %.5f\n"
             "wall time:            %.2f s (%.1f ms per step in this run)\n",
             T->adapter, meth, (long long)r->trainable, 100.0 * (double)r->trainable / (double)base,
             T->lora.n_te ? "U-Net + text encoder" : "U-Net", (long long)base, ab, (long long)r->adapter_bytes,
             o->method == METHOD_FULL ? "; the whole model: U-Net, VAE, text encoder" : "", ub,
             (long long)r->unet_file_bytes, T->m.files[0].path, pk,
             (double)(T->acts.bytes + T->cacts.bytes) / (1 << 20), sb, o->steps, o->batch, o->grad_accum, T->res,
             o->buckets ? " buckets" : "", (long long)T->d.n_samples, resumed, T->dc.hits, T->dc.misses,
             T->capv ? "; text embeddings: encoded every step" : " + text embeddings",
             T->dc.cache_dir ? " in " : " (no disk cache)", T->dc.cache_dir ? T->dc.cache_dir : "", r->first_loss,
             r->mean_loss_first10, r->mean_loss_last10, r->last_loss, r->wall_s, 1000.0 * r->step_s);
    /* then the data: images used, skipped (with reasons), caption fallbacks, buckets */
    char *data = NULL;
    size_t dlen = 0;
    FILE *mf = open_memstream(&data, &dlen);
    LS_ASSERT(mf);
    fputs(rep, mf);
    if (r->n_val)
        fprintf(mf, "validation loss:      %d held-out images x %d timesteps: step %d %.5f, best %.5f at step %d, "
                    "last %.5f (validation.csv)\n", T->n_val_items, VAL_T, T->val_step[0], r->val_first, r->val_best,
                r->val_best_step, r->val_last);
    dataset_report(&T->d, mf);
    fclose(mf);
    char *rp = ls_path_join(o->out, "report.txt");
    int rc = ls_write_file_atomic(rp, data, dlen);
    free(rp);
    if (rc == LS_OK && !o->quiet) fputs(data, stdout);
    free(data);
    return rc;
}

int train_run(const TrainOptions *oin, TrainResult *res) {
    Trainer *T = callocCheck(1, sizeof *T);
    TrainResult r;
    memset(&r, 0, sizeof r);
    double t_start = ls_time();
    T->o = *oin;
    TrainOptions *o = &T->o;
    o->n_owned = 0; /* the caller owns the strings */
    char nb[1024], ob[1200];
    int rc = LS_ERR;
    if (!o->data_dir) {
        rc = ls_set_error("train: no training folder given");
        goto out;
    }
    if (o->steps < 1 || o->batch < 1 || o->batch > 1024 || o->grad_accum < 1 || !(o->lr > 0) || !isfinite(o->lr) ||
        o->warmup < 0) {
        rc = ls_set_error("train: --steps, --batch, --grad-accum and --lr must be positive (--batch ≤ 1024)");
        goto out;
    }
    if (check_method_options(o) < 0) goto out;
    resolve_options(o, nb, sizeof nb, ob, sizeof ob);
    if (check_out(o->out, o->force, o->resume) < 0) goto out;
    T->ckpt_path = ls_path_join(o->out, "checkpoint.safetensors");
    if (o->resume && !ls_file_exists(T->ckpt_path)) {
        ls_set_error("%s: no checkpoint to resume from (run without --resume)", T->ckpt_path);
        goto out;
    }
    char *cache_default = NULL;
    if (!o->cache_dir) o->cache_dir = cache_default = ls_path_join(o->out, "cache");
    if (trainer_setup(T) < 0) goto out_cd;
    {   /* full fine-tuning writes a model in the input's layout: a diffusers folder or one file */
        char fn[1100];
        int folder = o->method == METHOD_FULL && !T->m.single_file;
        snprintf(fn, sizeof fn, folder ? "%s" : "%s.safetensors", o->name);
        T->adapter = ls_path_join(o->out, fn);
    }
    T->csv_path = ls_path_join(o->out, "loss.csv");
    T->plot_path = ls_path_join(o->out, "loss.png");
    T->samples_dir = ls_path_join(o->out, "samples");
    if (o->resume && ckpt_load(T) < 0) goto out_cd;
    if (ls_mkdir_p(o->out) < 0) goto out_cd;
    if (!o->resume && ls_file_exists(T->ckpt_path) && unlink(T->ckpt_path) != 0) { /* --force: start over */
        ls_set_error("%s: cannot remove the old checkpoint: %s", T->ckpt_path, strerror(errno));
        goto out_cd;
    }
    if (o->resume && ls_file_exists(T->csv_path) && csv_truncate(T->csv_path, T->step) < 0) goto out_cd;
    T->csv = fopen(T->csv_path, o->resume ? "a" : "w");
    if (!T->csv) {
        ls_set_error("%s: cannot write: %s", T->csv_path, strerror(errno));
        goto out_cd;
    }
    if (!o->resume) fprintf(T->csv, "step,loss,lr,grad_norm,seconds\n");
    if (T->n_val_items) {
        T->val_path = ls_path_join(o->out, "validation.csv");
        int append = o->resume && ls_file_exists(T->val_path);
        if (append && csv_truncate(T->val_path, T->step) < 0) goto out_cd;
        T->val_csv = fopen(T->val_path, append ? "a" : "w");
        if (!T->val_csv) {
            ls_set_error("%s: cannot write: %s", T->val_path, strerror(errno));
            goto out_cd;
        }
        if (!append) fprintf(T->val_csv, "step,validation_loss\n");
    }
    {
        char *js = train_options_to_json(o, T->res), *cp = ls_path_join(o->out, "config.json");
        int wrc = ls_write_file_atomic(cp, js, strlen(js));
        free(js), free(cp);
        if (wrc < 0) goto out_cd;
    }
    r.trainable = T->ts.n_params;
    model_param_count(&T->m, &r.unet_params, NULL, NULL);
    r.unet_file_bytes = (int64_t)T->m.files[0].map_size;
    r.start_step = T->start_step;
    T->tty = isatty(2) && !o->quiet;
    if (!o->quiet) {
        char meth[256];
        describe_method(T, meth, sizeof meth);
        fprintf(stderr, "lorastyle: training %s: %lld parameters, %d steps%s\n", meth, (long long)T->ts.n_params,
                o->steps, T->start_step ? " (resumed)" : "");
    }

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigemptyset(&sa.sa_mask);
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    if (precache(T) < 0) {
        if (g_interrupted) rc = TRAIN_INTERRUPTED;
        goto loop_out;
    }
    if (T->n_val_items && T->step == 0 && record_validation(T) < 0) goto loop_out; /* the base model's */
    double t_loop = ls_time();
    int stopped = 0;
    while (T->step < o->steps) {
        int s = T->step;
        double loss = 0.0, gnorm = 0.0;
        float lr = train_lr_at(o, s);
        trainset_zero_grads(&T->ts);
        int fail = 0;
        for (int a = 0; a < o->grad_accum && !fail; a++) {
            double l = 0.0;
            if (micro_step(T, (uint64_t)s * o->grad_accum + a, &l) < 0) fail = 1;
            else loss += l / o->grad_accum;
        }
        if (fail) goto loop_out;
        if (isfinite(loss)) gnorm = sqrt(trainset_grad_sumsq(&T->ts));
        if (!isfinite(loss) || !isfinite(gnorm)) {
            if (T->tty) fputc('\n', stderr);
            ls_set_error("training stopped at step %d: the %s is %s (learning rate %g too high?); %s%s", s + 1,
                         isfinite(loss) ? "gradient norm" : "loss",
                         isnan(isfinite(loss) ? gnorm : loss) ? "NaN" : "infinite", (double)lr,
                         T->ckpt_step ? "the last good checkpoint is kept: " : "no checkpoint was written",
                         T->ckpt_step ? T->ckpt_path : "");
            goto loop_out;
        }
        float gscale = 1.0f;
        if (o->max_grad_norm > 0 && gnorm > o->max_grad_norm) gscale = (float)(o->max_grad_norm / (gnorm + 1e-6));
        adamw_step(&T->ts, &T->adam, lr, s + 1, gscale);
        fprintf(T->csv, "%d,%.6g,%.6g,%.6g,%.3f\n", s + 1, loss, (double)lr, gnorm, ls_time() - t_loop);
        fflush(T->csv); /* readable while training (tail -f, plots) */
        T->hist[s] = (float)loss;
        T->ema = 0.9 * T->ema + 0.1 * loss, T->ema_w = 0.9 * T->ema_w + 0.1;
        T->step = s + 1;
        int last = T->step == o->steps;
        int ve = o->validate_every ? o->validate_every : o->checkpoint_every;
        if (T->n_val_items && (last || (ve > 0 && T->step % ve == 0)) && record_validation(T) < 0) goto loop_out;
        progress(T, t_loop);
        if (!last && o->save_every > 0 && T->step % o->save_every == 0 && save_adapter(T, T->step) < 0) goto loop_out;
        if (!last && o->checkpoint_every > 0 && T->step % o->checkpoint_every == 0) {
            fflush(T->csv);
            if (ckpt_save(T) < 0 || write_plot(T) < 0) goto loop_out;
        }
        if (!last && o->samples && o->sample_every > 0 && T->step % o->sample_every == 0 && write_samples(T) < 0 &&
            !g_interrupted)
            goto loop_out;
        if (!last && (g_interrupted || (o->stop_after > 0 && T->step - T->start_step >= o->stop_after))) {
            stopped = 1;
            break;
        }
    }
    r.step_s = (ls_time() - t_loop) / LS_MAX(1, T->step - T->start_step);
    fflush(T->csv);
    if (stopped) {
        if (T->tty) fputc('\n', stderr);
        if (ckpt_save(T) < 0 || save_adapter(T, T->step) < 0 || write_plot(T) < 0) goto loop_out;
        ls_set_error("interrupted at step %d of %d: checkpoint saved to %s; continue with: lorastyle train %s -o %s "
                     "--resume", T->step, o->steps, T->ckpt_path, o->data_dir, o->out);
        rc = TRAIN_INTERRUPTED;
        goto loop_out;
    }
    /* the adapter first (the product), then the checkpoint (to extend the run), plot, samples, report */
    if (save_adapter(T, T->step) < 0 || ckpt_save(T) < 0 || write_plot(T) < 0) goto loop_out;
    if (o->samples && write_samples(T) < 0) {
        if (!g_interrupted) goto loop_out;
        ls_warn("samples skipped (interrupted); the adapter is saved");
    }
    {
        double sf = 0, sl = 0;
        int n10 = LS_MIN(10, T->step);
        for (int i = 0; i < n10; i++) sf += T->hist[i], sl += T->hist[T->step - 1 - i];
        r.first_loss = T->hist[0], r.last_loss = T->hist[T->step - 1];
        r.n_val = T->n_val;
        if (T->n_val) {
            r.val_first = T->val_loss[0], r.val_last = T->val_loss[T->n_val - 1];
            r.val_best = r.val_first, r.val_best_step = T->val_step[0];
            for (int i = 1; i < T->n_val; i++)
                if (T->val_loss[i] < r.val_best) r.val_best = T->val_loss[i], r.val_best_step = T->val_step[i];
        }
        r.mean_loss_first10 = sf / n10, r.mean_loss_last10 = sl / n10;
        r.adapter_bytes = path_bytes(T->adapter);
    }
    snprintf(r.adapter_path, sizeof r.adapter_path, "%s", T->adapter);
    r.peak_rss = ls_peak_rss();
    r.wall_s = ls_time() - t_start;
    if (write_report(T, &r) < 0) goto loop_out;
    rc = LS_OK;
loop_out:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out_cd:
    r.steps_done = T->step;
    r.cache_hits = T->dc.hits, r.cache_misses = T->dc.misses;
    free(cache_default);
out:
    trainer_free(T);
    free(T);
    if (res) *res = r;
    return rc;
}
