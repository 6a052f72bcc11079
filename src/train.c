/* train.c — the LoRA training loop (see train.h). */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common.h"     // defines: ls_set_error, ls_time, ls_peak_rss, ls_path_join
#include "dataset.h"    // defines: Dataset, dataset_scan, dataset_epoch, dataset_caption
#include "jsonutil.h"   // defines: json_float
#include "lora.h"       // defines: Lora, lora_create, lora_save_kohya
#include "model.h"      // defines: Model, model_load, model_hash
#include "pipeline.h"   // defines: pipeline_encode_prompt
#include "rng.h"        // defines: rng_normal, rng_uniform
#include "scheduler.h"  // defines: sched_alphas_cumprod
#include "unet_train.h" // defines: unet_forward_train, unet_backward, unet_mse_loss

/* Purposes of the RNG streams (seed, step, purpose). */
enum { P_VAE = 1, P_TIMESTEP, P_NOISE, P_OFFSET };

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8
#define ADAM_WD 1e-2
#define MAX_TEXT_CACHE 1024

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static uint64_t stream(uint64_t seed, uint64_t step, uint64_t purpose) {
    return mix64(mix64(seed) ^ mix64(step * 16 + purpose));
}

void train_options_default(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->model = "models/tiny";
    o->steps = 500;
    o->batch = 1;
    o->lr = 1e-4f;
    o->rank = 4;
    o->clip_skip = 1;
    o->max_grad_norm = 1.0f;
    o->lr_schedule = LR_CONSTANT;
    o->fixed_t = -1;
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

static const char *base_name(const char *path, char *buf, int cap) {
    snprintf(buf, (size_t)cap, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    const char *b = strrchr(buf, '/');
    return b ? b + 1 : buf;
}

/* OUT must not exist (unless force) and must be creatable: checked before any work. */
static int check_out(const char *out, int force) {
    struct stat st;
    if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return ls_set_error("%s: exists and is not a folder", out);
        if (!force) return ls_set_error("%s: output folder already exists (use --force to overwrite)", out);
        if (access(out, W_OK) != 0) return ls_set_error("%s: output folder is not writable", out);
        return LS_OK;
    }
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
    float **lat; /* [n_items·2] (C, h, w) or NULL */
    int *lh, *lw;
    char **text; /* text-embedding cache: caption → (L, D) */
    float **ctx;
    int n_text;
    int clip_skip, L, D;
} DataCache;

/* x0 = (mean + exp(0.5·clamp(logvar, −30, 20))·ε)·scaling_factor: one VAE sample per item and flip. */
static const float *get_latent(DataCache *c, int i, int flip, int *h, int *w) {
    int j = 2 * i + flip;
    if (!c->lat[j]) {
        const DatasetItem *it = &c->d->items[i];
        float *img = mallocCheck((size_t)3 * it->th * it->tw * sizeof(float));
        if (dataset_load_item(c->d, i, img, flip) < 0) {
            free(img);
            return NULL;
        }
        const Vae *v = &c->m->vae;
        int C = v->cfg.latent_channels, f = vae_scale_factor(&v->cfg);
        size_t hw_max = (size_t)(it->th / f + 1) * (it->tw / f + 1);
        float *mom = mallocCheck(2 * C * hw_max * sizeof(float));
        int hh, ww;
        vae_encode(v, mom, img, 1, it->th, it->tw, &hh, &ww);
        size_t n = (size_t)C * hh * ww;
        float *lat = mallocCheck(n * sizeof(float));
        rng_normal(lat, n, stream(c->seed, (uint64_t)j, P_VAE), 0);
        float sf = v->cfg.scaling_factor;
        for (size_t k = 0; k < n; k++) {
            float lv = mom[n + k] < -30.0f ? -30.0f : mom[n + k] > 20.0f ? 20.0f : mom[n + k];
            lat[k] = (mom[k] + expf(0.5f * lv) * lat[k]) * sf;
        }
        free(img);
        free(mom);
        c->lat[j] = lat, c->lh[j] = hh, c->lw[j] = ww;
    }
    *h = c->lh[j], *w = c->lw[j];
    return c->lat[j];
}

static int get_ctx(DataCache *c, const char *text, float *out) {
    size_t n = (size_t)c->L * c->D;
    for (int i = 0; i < c->n_text; i++)
        if (!strcmp(c->text[i], text)) {
            memcpy(out, c->ctx[i], n * sizeof(float));
            return LS_OK;
        }
    LS_TRY(pipeline_encode_prompt(c->m, text, c->clip_skip, out));
    if (c->n_text < MAX_TEXT_CACHE) {
        c->text[c->n_text] = strdup(text);
        c->ctx[c->n_text] = mallocCheck(n * sizeof(float));
        memcpy(c->ctx[c->n_text], out, n * sizeof(float));
        c->n_text++;
    }
    return LS_OK;
}

static void cache_free(DataCache *c) {
    if (c->lat)
        for (int j = 0; j < 2 * c->d->n_items; j++) free(c->lat[j]);
    for (int i = 0; i < c->n_text; i++) free(c->text[i]), free(c->ctx[i]);
    free(c->lat), free(c->lh), free(c->lw), free(c->text), free(c->ctx);
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
static void adamw_step(const TrainSet *ts, AdamState *st, float lr, int t, float gscale) {
    double bc1 = 1.0 - pow(ADAM_B1, t), bc2 = 1.0 - pow(ADAM_B2, t);
    for (int i = 0; i < ts->n; i++) {
        const TrainTensor *q = &ts->t[i];
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

/* ---------------- outputs ---------------- */

static char *fmt(const char *f, double v) {
    char b[64];
    snprintf(b, sizeof b, f, v);
    return strdup(b);
}

static int save_adapter(const Lora *a, const TrainOptions *o, Model *m, const Dataset *d, int res, int steps_done,
                        const char *path) {
    const char *kv[64];
    char *own[32];
    int n = 0, no = 0;
#define KV(k, v) (kv[2 * n] = (k), kv[2 * n + 1] = (v), n++)
#define KVF(k, f, x) (own[no] = fmt((f), (x)), KV((k), own[no]), no++)
    KV("ss_network_module", "networks.lora");
    KVF("ss_network_dim", "%.0f", (double)o->rank);
    KVF("ss_network_alpha", "%g", (double)(o->alpha > 0 ? o->alpha : (float)o->rank));
    char args[128];
    if (o->conv_rank > 0) {
        snprintf(args, sizeof args, "{\"conv_dim\": \"%d\", \"conv_alpha\": \"%g\"}", o->conv_rank,
                 (double)(o->conv_alpha > 0 ? o->conv_alpha : (float)o->conv_rank));
        KV("ss_network_args", args);
    }
    KVF("ss_learning_rate", "%g", (double)o->lr);
    KVF("ss_unet_lr", "%g", (double)o->lr);
    KVF("ss_max_train_steps", "%.0f", (double)o->steps);
    KVF("ss_steps", "%.0f", (double)steps_done);
    char resb[64];
    snprintf(resb, sizeof resb, "(%d, %d)", res, res);
    KV("ss_resolution", resb);
    KVF("ss_num_train_images", "%.0f", (double)d->n_samples);
    KVF("ss_batch_size_per_device", "%.0f", (double)o->batch);
    char seedb[32];
    snprintf(seedb, sizeof seedb, "%llu", (unsigned long long)o->seed);
    KV("ss_seed", seedb);
    KV("ss_lr_scheduler", train_lr_schedule_name(o->lr_schedule));
    KVF("ss_lr_warmup_steps", "%.0f", (double)o->warmup);
    if (o->min_snr_gamma > 0) KVF("ss_min_snr_gamma", "%g", (double)o->min_snr_gamma);
    KVF("ss_noise_offset", "%g", (double)o->noise_offset);
    KVF("ss_max_grad_norm", "%g", (double)o->max_grad_norm);
    KV("ss_optimizer", "torch.optim.AdamW(weight_decay=0.01,betas=(0.9, 0.999),eps=1e-08)");
    KVF("ss_clip_skip", "%.0f", (double)o->clip_skip);
    KV("ss_flip_aug", o->flip ? "True" : "False");
    KV("ss_shuffle_caption", o->shuffle_tags ? "True" : "False");
    KVF("ss_keep_tokens", "%.0f", (double)o->keep_tokens);
    KV("ss_v2", "False");
    KV("ss_base_model_version", "sd_v1");
    KV("ss_sd_model_name", m->name);
    KV("ss_sd_model_hash", model_hash(m));
    char *tagf = dataset_tag_frequency_json(d);
    KV("ss_tag_frequency", tagf);
    KV("ss_output_name", o->name ? o->name : "");
    KV("lorastyle_method", "lora");
    LS_ASSERT(n <= 32 && no <= 32);
#undef KV
#undef KVF
    int rc = lora_save_kohya(a, path, kv, n);
    free(tagf);
    for (int i = 0; i < no; i++) free(own[i]);
    return rc;
}

static int write_config(const TrainOptions *o, const char *out_dir, const char *model_path, int res) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "data_dir", o->data_dir);
    cJSON_AddStringToObject(j, "model", model_path);
    cJSON_AddStringToObject(j, "output", out_dir);
    cJSON_AddStringToObject(j, "name", o->name);
    cJSON_AddStringToObject(j, "method", "lora");
    cJSON_AddNumberToObject(j, "steps", o->steps);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "lr", json_float(o->lr));
    cJSON_AddStringToObject(j, "lr_scheduler", train_lr_schedule_name(o->lr_schedule));
    cJSON_AddNumberToObject(j, "warmup", o->warmup);
    cJSON_AddNumberToObject(j, "rank", o->rank);
    cJSON_AddNumberToObject(j, "alpha", json_float(o->alpha > 0 ? o->alpha : (float)o->rank));
    cJSON_AddNumberToObject(j, "conv_rank", o->conv_rank);
    cJSON_AddNumberToObject(j, "conv_alpha",
                            json_float(o->conv_rank ? (o->conv_alpha > 0 ? o->conv_alpha : (float)o->conv_rank) : 0));
    cJSON_AddStringToObject(j, "targets", "attn1/attn2 to_q,to_k,to_v,to_out.0");
    cJSON_AddNumberToObject(j, "resolution", res);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "clip_skip", o->clip_skip);
    if (o->caption) cJSON_AddStringToObject(j, "caption", o->caption);
    if (o->trigger) cJSON_AddStringToObject(j, "trigger", o->trigger);
    cJSON_AddBoolToObject(j, "shuffle_tags", o->shuffle_tags);
    cJSON_AddNumberToObject(j, "keep_tokens", o->keep_tokens);
    cJSON_AddBoolToObject(j, "flip", o->flip);
    cJSON_AddNumberToObject(j, "min_snr_gamma", json_float(o->min_snr_gamma));
    cJSON_AddNumberToObject(j, "noise_offset", json_float(o->noise_offset));
    cJSON_AddNumberToObject(j, "max_grad_norm", json_float(o->max_grad_norm));
    cJSON_AddStringToObject(j, "optimizer", "AdamW beta1=0.9 beta2=0.999 eps=1e-8 weight_decay=0.01 (fp32 state)");
    cJSON_AddNumberToObject(j, "save_every", o->save_every);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    char *path = ls_path_join(out_dir, "config.json");
    size_t len = strlen(s);
    s = realloc(s, len + 2);
    s[len] = '\n', s[len + 1] = 0;
    int rc = ls_write_file_atomic(path, s, len + 1);
    free(path);
    free(s);
    return rc;
}

static void progress(int step, int total, double loss_ema, double t0, int tty, int quiet) {
    if (quiet) return;
    double el = ls_time() - t0, rate = step / (el > 0 ? el : 1e-9), eta = (total - step) / (rate > 0 ? rate : 1e-9);
    if (tty) {
        int width = 30, fill = width * step / total;
        fprintf(stderr, "\r[%.*s%*s] step %d/%d  loss %.4f  %.2f it/s  ETA %.0fs ", fill,
                "==============================", width - fill, "", step, total, loss_ema, rate, eta);
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

/* ---------------- the loop ---------------- */

int train_run(const TrainOptions *oin, TrainResult *res) {
    TrainOptions o = *oin;
    TrainResult r;
    memset(&r, 0, sizeof r);
    double t_start = ls_time();
    if (!o.data_dir) return ls_set_error("train: no training folder given");
    if (o.steps < 1) return ls_set_error("--steps must be at least 1");
    if (o.batch < 1 || o.batch > 1024) return ls_set_error("--batch must be in [1, 1024]");
    if (!(o.lr > 0) || !isfinite(o.lr)) return ls_set_error("--lr must be a positive number");
    if (o.warmup < 0 || o.warmup > o.steps) return ls_set_error("--warmup must be in [0, --steps]");
    char nb[1024], ob[1200];
    if (!o.name) o.name = base_name(o.data_dir, nb, sizeof nb);
    if (!o.out) {
        snprintf(ob, sizeof ob, "output/%s", o.name);
        o.out = ob;
    }
    LS_TRY(check_out(o.out, o.force));

    Model m;
    ModelOpts mo = {o.config_dir, o.tokenizer_dir};
    if (model_load(&m, o.model, &mo) < 0) return LS_ERR;
    int f = vae_scale_factor(&m.vae.cfg);
    int resolution = o.resolution ? o.resolution : m.unet.cfg.sample_size * f;
    int ufac = f << (m.unet.cfg.n_levels - 1);
    if (resolution % ufac) {
        model_free(&m);
        return ls_set_error("--resolution %d: must be a multiple of %d for this model", resolution, ufac);
    }

    Dataset d;
    DatasetOptions dopt;
    dataset_options_default(&dopt);
    dopt.resolution = resolution;
    dopt.caption = o.caption, dopt.trigger = o.trigger;
    dopt.shuffle_tags = o.shuffle_tags, dopt.keep_tokens = o.keep_tokens, dopt.flip = o.flip;
    dopt.quiet = o.quiet;
    if (dataset_scan(&d, o.data_dir, &dopt) < 0) {
        model_free(&m);
        return LS_ERR;
    }
    if (!o.quiet) dataset_report(&d, stderr);
    int rc = LS_ERR;
    Lora lora;
    memset(&lora, 0, sizeof lora);
    FILE *csv = NULL;
    DataCache dc = {0};
    DatasetEpoch ep = {0};
    UNetActs acts = {0};
    TrainSet ts = {0};
    AdamState adam = {0};
    char *adapter = NULL, *csv_path = NULL;
    int saved = 0;

    if (ls_mkdir_p(o.out) < 0) goto done;
    {
        char fn[1100];
        snprintf(fn, sizeof fn, "%s.safetensors", o.name);
        adapter = ls_path_join(o.out, fn);
    }
    csv_path = ls_path_join(o.out, "loss.csv");
    csv = fopen(csv_path, "w");
    if (!csv) {
        ls_set_error("%s: cannot write: %s", csv_path, strerror(errno));
        goto done;
    }
    fprintf(csv, "step,loss,lr,grad_norm,seconds\n");
    if (write_config(&o, o.out, o.model, resolution) < 0) goto done;

    if (lora_create(&lora, &m, NULL, o.rank, o.alpha, o.conv_rank, o.conv_alpha, o.seed) < 0) goto done;
    if (lora_attach(&lora, &m, 0) < 0 || lora_grads_alloc(&lora) < 0) goto done;
    lora_trainset(&lora, &ts);
    adam_init(&adam, &ts);
    r.trainable = ts.n_params;
    model_param_count(&m, &r.unet_params, NULL, NULL);
    r.unet_file_bytes = (int64_t)m.files[0].map_size;

    dc.m = &m, dc.d = &d, dc.seed = o.seed, dc.clip_skip = o.clip_skip;
    dc.L = tokenizer_max_length(m.tok), dc.D = m.clip.cfg.hidden;
    dc.lat = callocCheck((size_t)2 * d.n_items, sizeof *dc.lat);
    dc.lh = callocCheck((size_t)2 * d.n_items, sizeof(int));
    dc.lw = callocCheck((size_t)2 * d.n_items, sizeof(int));
    dc.text = callocCheck(MAX_TEXT_CACHE, sizeof *dc.text);
    dc.ctx = callocCheck(MAX_TEXT_CACHE, sizeof *dc.ctx);

    int T = m.sched.num_train_timesteps;
    float *acp = mallocCheck((size_t)T * sizeof(float));
    sched_alphas_cumprod(&m.sched, acp);
    int vpred = m.sched.prediction == PRED_V;
    int C = m.vae.cfg.latent_channels;
    uint64_t epoch = 0;
    int bi = 0;
    double ema = 0, ema_w = 0, loss_sum_first = 0, loss_sum_last = 0;
    int tty = isatty(2) && !o.quiet;
    double t_loop = ls_time();
    int capb = dataset_caption_bound(&d, 0);
    for (int i = 1; i < d.n_items; i++) capb = LS_MAX(capb, dataset_caption_bound(&d, i));
    char *captxt = mallocCheck((size_t)capb + 1);
    if (!o.quiet)
        fprintf(stderr, "lorastyle: training %d modules (%lld parameters, rank %d, alpha %g%s) for %d steps\n",
                lora.n_mods, (long long)lora.n_params, o.rank, (double)(o.alpha > 0 ? o.alpha : (float)o.rank),
                o.conv_rank ? ", + LoCon" : "", o.steps);

    for (int s = 0; s < o.steps; s++) {
        if (bi >= ep.n_batches) {
            dataset_epoch_free(&ep);
            if (dataset_epoch(&d, o.seed, epoch++, o.batch, &ep) < 0) goto loop_fail;
            bi = 0;
        }
        int b0 = ep.batch_start[bi], B = ep.batch_start[bi + 1] - b0;
        bi++;
        int h = 0, w = 0;
        const float *l0 = get_latent(&dc, ep.items[b0], ep.flip[b0], &h, &w);
        if (!l0) goto loop_fail;
        size_t n = (size_t)C * h * w, nctx = (size_t)dc.L * dc.D;
        float *x0 = mallocCheck(B * n * sizeof(float)), *ctx = mallocCheck(B * nctx * sizeof(float));
        float *noise = mallocCheck(B * n * sizeof(float)), *xt = mallocCheck(B * n * sizeof(float));
        float *target = mallocCheck(B * n * sizeof(float)), *out = mallocCheck(B * n * sizeof(float));
        float *dout = mallocCheck(B * n * sizeof(float));
        float tf[1024];
        int fail = 0;
        LS_ASSERT(B <= 1024);
        for (int k = 0; k < B && !fail; k++) {
            int item = ep.items[b0 + k], hh, ww;
            const float *lat = get_latent(&dc, item, ep.flip[b0 + k], &hh, &ww);
            if (!lat) fail = 1;
            else {
                LS_ASSERT(hh == h && ww == w); /* batches never mix buckets */
                memcpy(x0 + k * n, lat, n * sizeof(float));
                if (dataset_caption(&d, item, o.seed, (uint64_t)s, captxt, capb + 1) < 0 ||
                    get_ctx(&dc, captxt, ctx + k * nctx) < 0)
                    fail = 1;
            }
        }
        uint64_t ns = o.fixed_noise ? 0 : (uint64_t)s;
        int tt[1024];
        if (!fail) {
            float u[1024];
            rng_uniform(u, (size_t)B, stream(o.seed, ns, P_TIMESTEP), 0);
            for (int k = 0; k < B; k++) {
                int t = o.fixed_t >= 0 ? o.fixed_t : (int)(u[k] * (float)T);
                tt[k] = t < 0 ? 0 : t >= T ? T - 1 : t;
                tf[k] = (float)tt[k];
            }
            rng_normal(noise, B * n, stream(o.seed, ns, P_NOISE), 0);
            if (o.noise_offset != 0.0f) {
                float off[1024 * 8];
                LS_ASSERT(B * C <= 1024 * 8);
                rng_normal(off, (size_t)(B * C), stream(o.seed, ns, P_OFFSET), 0);
                for (int k = 0; k < B; k++)
                    for (int c = 0; c < C; c++)
                        for (int q = 0; q < h * w; q++) noise[k * n + (size_t)c * h * w + q] += o.noise_offset * off[k * C + c];
            }
            for (int k = 0; k < B; k++) {
                float a = sqrtf(acp[tt[k]]), sg = sqrtf(1.0f - acp[tt[k]]);
                for (size_t q = 0; q < n; q++) {
                    size_t id = k * n + q;
                    xt[id] = a * x0[id] + sg * noise[id];
                    target[id] = vpred ? a * noise[id] - sg * x0[id] : noise[id];
                }
            }
        }
        double loss = 0, gnorm = 0;
        float lr = train_lr_at(&o, s);
        if (!fail) {
            trainset_zero_grads(&ts);
            unet_forward_train(&m.unet, &acts, out, xt, tf, ctx, B, h, w, dc.L);
            for (int k = 0; k < B; k++) {
                double lk = unet_mse_loss(dout + k * n, out + k * n, target + k * n, n), wk = 1.0;
                if (o.min_snr_gamma > 0) {
                    double snr = acp[tt[k]] / (1.0 - acp[tt[k]]);
                    double mn = snr < o.min_snr_gamma ? snr : o.min_snr_gamma;
                    wk = vpred ? mn / (snr + 1.0) : mn / snr;
                }
                loss += wk * lk / B;
                float sc = (float)(wk / B);
                for (size_t q = 0; q < n; q++) dout[k * n + q] *= sc;
            }
            if (isfinite(loss)) {
                unet_backward(&m.unet, &acts, NULL, dout);
                gnorm = sqrt(trainset_grad_sumsq(&ts));
            }
        }
        free(x0), free(ctx), free(noise), free(xt), free(target), free(out), free(dout);
        if (fail) goto loop_fail;
        if (!isfinite(loss) || !isfinite(gnorm)) {
            if (tty) fputc('\n', stderr);
            ls_set_error("training stopped at step %d: the %s is %s (learning rate %g too high?); %s%s", s + 1,
                         isfinite(loss) ? "gradient norm" : "loss", isnan(isfinite(loss) ? gnorm : loss) ? "NaN" : "infinite",
                         (double)lr, saved ? "the last adapter written is kept: " : "no adapter was written",
                         saved ? adapter : "");
            goto loop_fail;
        }
        float gscale = 1.0f;
        if (o.max_grad_norm > 0 && gnorm > o.max_grad_norm) gscale = (float)(o.max_grad_norm / (gnorm + 1e-6));
        adamw_step(&ts, &adam, lr, s + 1, gscale);
        double el = ls_time() - t_loop;
        fprintf(csv, "%d,%.6g,%.6g,%.6g,%.3f\n", s + 1, loss, (double)lr, gnorm, el);
        if (s == 0) r.first_loss = loss;
        r.last_loss = loss;
        if (s < 10) loss_sum_first += loss;
        if (s >= o.steps - 10) loss_sum_last += loss;
        ema = 0.9 * ema + 0.1 * loss, ema_w = 0.9 * ema_w + 0.1;
        r.steps_done = s + 1;
        progress(s + 1, o.steps, ema / ema_w, t_loop, tty, o.quiet);
        if (o.save_every > 0 && (s + 1) % o.save_every == 0 && s + 1 < o.steps) {
            if (save_adapter(&lora, &o, &m, &d, resolution, s + 1, adapter) < 0) goto loop_fail;
            saved = 1;
        }
    }
    r.mean_loss_first10 = loss_sum_first / LS_MIN(10, o.steps);
    r.mean_loss_last10 = loss_sum_last / LS_MIN(10, o.steps);
    r.step_s = (ls_time() - t_loop) / o.steps;
    if (save_adapter(&lora, &o, &m, &d, resolution, o.steps, adapter) < 0) goto loop_fail;
    saved = 1;
    {
        struct stat st;
        if (stat(adapter, &st) == 0) r.adapter_bytes = st.st_size;
    }
    snprintf(r.adapter_path, sizeof r.adapter_path, "%s", adapter);
    r.peak_rss = ls_peak_rss();
    r.wall_s = ls_time() - t_start;
    {
        char ab[32], ub[32], pk[32], rep[2048];
        human_bytes((double)r.adapter_bytes, ab, sizeof ab);
        human_bytes((double)r.unet_file_bytes, ub, sizeof ub);
        human_bytes((double)r.peak_rss, pk, sizeof pk);
        snprintf(rep, sizeof rep,
                 "lorastyle train report\n"
                 "adapter:              %s\n"
                 "method:               LoRA rank %d alpha %g on %d modules (%d LoCon), kohya format\n"
                 "trainable parameters: %lld (%.4f%% of the U-Net's %lld)\n"
                 "adapter file:         %s (%lld bytes) vs the U-Net checkpoint %s (%lld bytes, %s)\n"
                 "peak memory (RSS):    %s\n"
                 "steps:                %d (batch %d, resolution %d, %lld samples per epoch)\n"
                 "loss:                 first %.5f, mean of first 10 %.5f, mean of last 10 %.5f, last %.5f\n"
                 "wall time:            %.2f s (%.1f ms per step)\n",
                 adapter, o.rank, (double)(o.alpha > 0 ? o.alpha : (float)o.rank), lora.n_mods, lora.n_conv,
                 (long long)r.trainable, 100.0 * (double)r.trainable / (double)r.unet_params, (long long)r.unet_params,
                 ab, (long long)r.adapter_bytes, ub, (long long)r.unet_file_bytes, m.files[0].path, pk, o.steps,
                 o.batch, resolution, (long long)d.n_samples, r.first_loss, r.mean_loss_first10, r.mean_loss_last10,
                 r.last_loss, r.wall_s, 1000.0 * r.step_s);
        char *rp = ls_path_join(o.out, "report.txt");
        int wrc = ls_write_file_atomic(rp, rep, strlen(rep));
        free(rp);
        if (wrc < 0) goto loop_fail;
        if (!o.quiet) fputs(rep, stdout);
    }
    rc = LS_OK;
loop_fail:
    free(captxt);
    free(acp);
done:
    if (csv) fclose(csv);
    unet_acts_free(&acts);
    dataset_epoch_free(&ep);
    if (dc.d) cache_free(&dc);
    adam_free(&adam);
    trainset_free(&ts);
    lora_free(&lora);
    dataset_free(&d);
    model_free(&m);
    free(adapter);
    free(csv_path);
    if (res) *res = r;
    return rc;
}
