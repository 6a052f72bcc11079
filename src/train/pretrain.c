/* pretrain.c — `lorastyle pretrain vae|diffusion MODEL`: training a small SD-1.x model from scratch on the
 * streamed synthetic scenes (datasets/scenes.h); how models/base is made (scripts/make_base_model.sh).
 *
 *   vae        the autoencoder alone: L1 reconstruction + an L1 edge term (image gradients, keeps edges and
 *              textures crisp) + KL at LDM's weight (1e-6 against per-pixel sums); the images are scenes
 *              in every render style, as SD's VAE saw every kind of image. At the end the latent scaling
 *              factor is measured (1/std of the latents, as SD's 0.18215 was) and written to vae/config.json.
 *              --decoder-only fine-tunes the decoder alone (as SD's ft-MSE VAE): the latent space, and so any
 *              U-Net trained on it, stays valid.
 *   diffusion  the U-Net and the text encoder together through the diffusion loss in the model's own
 *              parameterisation (its scheduler config: ε, or v with a zero-terminal-SNR schedule as the
 *              base preset uses; min-SNR-5 weights),
 *              on plain-style scenes only (the styles stay new to the model), with the caption dropped
 *              (empty prompt) for 10% of the samples so classifier-free guidance works; the VAE is frozen.
 *              The model written is the exponential moving average of the weights (decay 0.999).
 *
 * Both stages are AdamW with warmup + cosine decay to 10%, gradient clipping at 1, and resumable: every
 * --checkpoint-every steps WORK/checkpoint.safetensors holds the trained tensors, the AdamW moments, the EMA
 * and the step (temp file + rename), and the data of step s is a pure function of (seed, s), so --resume
 * continues exactly. The model folder is rewritten (atomically, file by file) at every checkpoint and at the
 * end, so a stopped run still leaves a usable model. */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"       // defines: arg_fail, arg_need, arg_int, arg_float
#include "clip_bwd.h"   // defines: clip_encode_train, clip_backward, clip_full_grads_alloc
#include "common.h"     // defines: ls_set_error, ls_time, ls_path_join
#include "jsonutil.h"   // defines: json_float
#include "model.h"      // defines: Model, model_load, model_save_folder
#include "ops.h"        // defines: op_num_threads
#include "rng.h"        // defines: rng_normal, rng_uniform
#include "scenes.h"     // defines: Scene, scene_sample, scene_caption, scene_render_chw
#include "train.h"      // defines: train_loss_plot, train_csv_truncate
#include "trainset.h"   // defines: TrainSet, AdamState, adamw_step
#include "unet_bwd.h"   // defines: unet_forward_train, unet_backward, unet_full_grads_alloc
#include "vae_bwd.h"    // defines: vae_encode_train, vae_decode_train, vae_full_grads_alloc

enum { STAGE_VAE, STAGE_DIFFUSION };
enum { S_SCENE = 1, S_STYLE, S_EPS, S_T, S_NOISE, S_DROP }; /* RNG stream purposes */

typedef struct {
    int stage;
    const char *model, *work, *out;
    long steps, batch, warmup, checkpoint_every, seed, stop_after;
    float lr, kl_weight, edge_weight, object_weight, uncond, ema_decay, min_snr;
    int resume, force, quiet;
    int decoder_only; /* vae --decoder-only: the encoder (and so the latent space) stays as it is */
    int overfit; /* --overfit: every step sees step 0's batch (a sanity check: the loss must fall to ~0) */
    char given[16][24]; /* options given on the command line (--resume takes the others from the checkpoint) */
    int n_given;
} PretrainOptions;

/* The options a checkpoint records, so that --resume continues with them. */
typedef struct {
    const char *flag;
    char type; /* 'l' long, 'f' float */
    size_t off;
} PretrainField;
#define PF(fl, t, m) {fl, t, offsetof(PretrainOptions, m)}
static const PretrainField RECORDED[] = {
    PF("--steps", 'l', steps),   PF("--batch", 'l', batch),           PF("--warmup", 'l', warmup),
    PF("--seed", 'l', seed),     PF("--lr", 'f', lr),                 PF("--kl-weight", 'f', kl_weight),
    PF("--edge-weight", 'f', edge_weight), PF("--object-weight", 'f', object_weight), PF("--uncond", 'f', uncond), PF("--ema", 'f', ema_decay),
    PF("--min-snr", 'f', min_snr),
};
#undef PF
#define N_RECORDED ((int)(sizeof RECORDED / sizeof RECORDED[0]))

static int was_given(const PretrainOptions *o, const char *flag) {
    for (int i = 0; i < o->n_given; i++)
        if (!strcmp(o->given[i], flag)) return 1;
    return 0;
}

typedef struct {
    PretrainOptions o;
    Model m;
    TrainSet ts;
    AdamState adam;
    float **ema;       /* [ts.n] EMA of every trained tensor (diffusion stage), or NULL */
    float *hist;       /* loss per step */
    int step;
    char *ckpt, *csv_path, *plot;
    FILE *csv;
} Pretrainer;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static uint64_t stream(uint64_t seed, uint64_t step, uint64_t purpose) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ (step * 16 + purpose) * 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 31;
    return x * 0x94d049bb133111ebULL ^ purpose;
}

static float lr_at(const PretrainOptions *o, int s) {
    if (s < o->warmup) return o->lr * (float)(s + 1) / (float)o->warmup;
    double p = (double)(s - o->warmup) / (double)LS_MAX(1, o->steps - o->warmup);
    return (float)(o->lr * (0.1 + 0.9 * 0.5 * (1.0 + cos(M_PI * p))));
}

/* ---------------- checkpoint ---------------- */

static int ckpt_save(Pretrainer *P) {
    StWriter w;
    st_writer_init(&w);
    char sv[32];
    trainset_write_state(&w, &P->ts, &P->adam, P->ema, '/');
    int64_t hs[1] = {P->step > 0 ? P->step : 1};
    float zero = 0.0f;
    st_writer_add(&w, "loss_history", ST_F32, 1, hs, P->step > 0 ? P->hist : &zero);
    snprintf(sv, sizeof sv, "%d", P->step);
    st_writer_meta(&w, "lorastyle_format", "pretrain-checkpoint-1");
    st_writer_meta(&w, "stage", P->o.stage == STAGE_VAE ? "vae" : "diffusion");
    st_writer_meta(&w, "step", sv);
    for (int i = 0; i < N_RECORDED; i++) {
        const char *p = (const char *)&P->o + RECORDED[i].off;
        char v[64];
        if (RECORDED[i].type == 'l') snprintf(v, sizeof v, "%ld", *(const long *)p);
        else snprintf(v, sizeof v, "%.9g", (double)*(const float *)p);
        st_writer_meta(&w, RECORDED[i].flag, v);
    }
    int rc = st_writer_save(&w, P->ckpt);
    st_writer_free(&w);
    return rc;
}

/* --resume: the options the checkpoint recorded, for those not given again on the command line. */
static int ckpt_read_options(PretrainOptions *o, const char *path) {
    StFile f;
    LS_TRY(st_open(&f, path));
    for (int i = 0; i < N_RECORDED; i++) {
        const char *v = st_meta_get(&f, RECORDED[i].flag);
        if (!v || was_given(o, RECORDED[i].flag)) continue;
        char *p = (char *)o + RECORDED[i].off;
        if (RECORDED[i].type == 'l') *(long *)p = atol(v);
        else *(float *)p = (float)atof(v);
    }
    st_close(&f);
    return LS_OK;
}

static int ckpt_load(Pretrainer *P) {
    StFile f;
    LS_TRY(st_open(&f, P->ckpt));
    int rc = LS_ERR;
    const char *fmt = st_meta_get(&f, "lorastyle_format"), *stage = st_meta_get(&f, "stage");
    const char *sv = st_meta_get(&f, "step");
    if (!fmt || strcmp(fmt, "pretrain-checkpoint-1") || !stage || !sv) {
        ls_set_error("%s: not a lorastyle pretrain checkpoint", P->ckpt);
        goto out;
    }
    if (strcmp(stage, P->o.stage == STAGE_VAE ? "vae" : "diffusion")) {
        ls_set_error("%s: a checkpoint of the %s stage, not this one", P->ckpt, stage);
        goto out;
    }
    P->step = atoi(sv);
    if (P->step < 0 || P->step > P->o.steps) {
        ls_set_error("%s: step %d does not fit --steps %ld", P->ckpt, P->step, P->o.steps);
        goto out;
    }
    char name[600];
    for (int i = 0; i < P->ts.n; i++) {
        const TrainTensor *t = &P->ts.t[i];
        float *dst[4] = {t->p, P->adam.m[i], P->adam.v[i], P->ema ? P->ema[i] : NULL};
        const char *pre[4] = {"p", "m", "v", "ema"};
        for (int k = 0; k < 4; k++) {
            if (!dst[k]) continue;
            snprintf(name, sizeof name, "%s/%s", pre[k], t->name);
            const StTensor *st = st_find(&f, name);
            if (!st || st->numel != (int64_t)t->n) {
                ls_set_error("%s: tensor %s is missing or has another size (a checkpoint of another model?)",
                             P->ckpt, name);
                goto out;
            }
            if (st_to_f32(&f, st, dst[k], 1) < 0) goto out;
        }
    }
    const StTensor *h = st_find(&f, "loss_history");
    if (h && P->step > 0 && h->numel >= P->step) {
        float *tmp = mallocCheck((size_t)h->numel * sizeof(float));
        if (st_to_f32(&f, h, tmp, 0) == 0) memcpy(P->hist, tmp, (size_t)P->step * sizeof(float));
        free(tmp);
    }
    rc = LS_OK;
out:
    st_close(&f);
    return rc;
}

/* Write the model folder: the trained weights (the EMA for the diffusion stage) in float32, or in f16 for
 * the final --dtype f16 copy. */
static int save_model(Pretrainer *P, const char *out, StDtype dt) {
    float **keep = NULL;
    if (P->ema) { /* swap the EMA in, save, swap back */
        keep = mallocCheck((size_t)P->ts.n * sizeof *keep);
        for (int i = 0; i < P->ts.n; i++) {
            keep[i] = mallocCheck(P->ts.t[i].n * sizeof(float));
            memcpy(keep[i], P->ts.t[i].p, P->ts.t[i].n * sizeof(float));
            memcpy(P->ts.t[i].p, P->ema[i], P->ts.t[i].n * sizeof(float));
        }
    }
    int rc = model_save_folder(&P->m, out, dt);
    if (keep) {
        for (int i = 0; i < P->ts.n; i++) {
            memcpy(P->ts.t[i].p, keep[i], P->ts.t[i].n * sizeof(float));
            free(keep[i]);
        }
        free(keep);
    }
    return rc;
}

/* ---------------- the VAE stage ---------------- */

/* Σ|a−b| (+ the same of horizontal and vertical differences, times we); d = ∂/∂a of it, times scale. */
static double l1_edge(float *d, const float *a, const float *b, const float *wmap, int B, int C, int H, int W,
                      float we, float scale) {
    double acc = 0.0;
    size_t hw = (size_t)H * W;
    for (int p = 0; p < B * C; p++) {
        const float *ap = a + (size_t)p * hw, *bp = b + (size_t)p * hw, *wp = wmap ? wmap + (size_t)(p / C) * hw : NULL;
        float *dp = d + (size_t)p * hw;
        for (size_t i = 0; i < hw; i++) {
            float e = ap[i] - bp[i], wi = wp ? wp[i] : 1.0f;
            acc += wi * fabsf(e);
            dp[i] = e > 0 ? wi * scale : e < 0 ? -wi * scale : 0.0f;
        }
        if (we <= 0) continue;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = y * W + x;
                float wi = we * (wp ? wp[i] : 1.0f);
                if (x + 1 < W) {
                    float e = (ap[i + 1] - ap[i]) - (bp[i + 1] - bp[i]);
                    float s = e > 0 ? wi * scale : e < 0 ? -wi * scale : 0.0f;
                    acc += wi * fabsf(e), dp[i + 1] += s, dp[i] -= s;
                }
                if (y + 1 < H) {
                    float e = (ap[i + W] - ap[i]) - (bp[i + W] - bp[i]);
                    float s = e > 0 ? wi * scale : e < 0 ? -wi * scale : 0.0f;
                    acc += wi * fabsf(e), dp[i + W] += s, dp[i] -= s;
                }
            }
    }
    return acc;
}

/* Per-pixel loss weights of one scene: 1 + ow inside 1.25× each object's radius (small objects cover a few
 * percent of the image; unweighted, the background dominates the reconstruction loss and small shapes come
 * back with shifted colours and rounded corners). */
static void object_weights(const Scene *sc, float ow, float *w, int size) {
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float px = (x + 0.5f) / size, py = (y + 0.5f) / size, v = 1.0f;
            for (int k = 0; k < sc->n_obj; k++) {
                float dx = px - sc->obj[k].cx, dy = py - sc->obj[k].cy, r = 1.25f * sc->obj[k].r;
                if (dx * dx + dy * dy <= r * r) { v = 1.0f + ow; break; }
            }
            w[(size_t)y * size + x] = v;
        }
}

/* The images of step s: B scenes, in a random style (the VAE stage) or plain. */
static void step_images(const PretrainOptions *o, int s, int any_style, float *img, int size, char (*cap)[256],
                        float *wmap) {
    for (int k = 0; k < o->batch; k++) {
        uint64_t idx = (uint64_t)(o->overfit ? 0 : s) * (uint64_t)o->batch + (uint64_t)k;
        Scene sc;
        scene_sample(&sc, SCENE_TRAIN, (uint64_t)o->seed, idx);
        int style = SCENE_STYLE_PLAIN;
        if (any_style) {
            uint32_t r = rng_u32(stream((uint64_t)o->seed, idx, S_STYLE), 0);
            style = (r % 8) < 4 ? SCENE_STYLE_PLAIN : (int)(1 + r % (SCENE_N_STYLES - 1));
        }
        scene_render_chw(&sc, style, (uint64_t)o->seed, idx, img + (size_t)k * 3 * size * size, size);
        if (cap) scene_caption(&sc, cap[k], sizeof cap[k]);
        if (wmap) object_weights(&sc, o->object_weight, wmap + (size_t)k * size * size, size);
    }
}

static double vae_step(Pretrainer *P, int s, int size) {
    const PretrainOptions *o = &P->o;
    const Vae *v = &P->m.vae;
    int B = (int)o->batch, f = vae_scale_factor(&v->cfg), h = size / f, L = v->cfg.latent_channels;
    size_t ni = (size_t)B * 3 * size * size, nl = (size_t)B * L * h * h;
    float *img = sbuf(ni), *rec = sbuf(ni), *drec = sbuf(ni);
    float *mom = sbuf(2 * nl), *dmom = sbuf(2 * nl), *z = sbuf(nl), *dz = sbuf(nl), *eps = sbuf(nl);
    float *wmap = o->object_weight > 0 ? sbuf((size_t)B * size * size) : NULL;
    step_images(o, s, 1, img, size, NULL, wmap);
    VaeActs acts = {0};
    vae_encode_train(v, &acts, mom, img, B, size, size);
    rng_normal(eps, nl, stream((uint64_t)o->seed, (uint64_t)s, S_EPS), 0);
    size_t per = (size_t)L * h * h;
    double kl = 0.0;
    for (int b = 0; b < B; b++)
        for (size_t q = 0; q < per; q++) {
            size_t im = (size_t)b * 2 * per + q, il = im + per, iz = (size_t)b * per + q;
            float lv = fminf(fmaxf(mom[il], -30.0f), 20.0f), sd = expf(0.5f * lv);
            z[iz] = mom[im] + sd * eps[iz];
            kl += 0.5 * ((double)mom[im] * mom[im] + (double)sd * sd - 1.0 - lv);
        }
    vae_decode_train(v, &acts, rec, z, B, h, h);
    double P_ = 3.0 * size * size, norm = 1.0 / (B * P_);
    double rl = l1_edge(drec, rec, img, wmap, B, 3, size, size, o->edge_weight, (float)norm);
    vae_decode_backward(v, &acts, dz, drec);
    for (int b = 0; b < B; b++)
        for (size_t q = 0; q < per; q++) {
            size_t im = (size_t)b * 2 * per + q, il = im + per, iz = (size_t)b * per + q;
            float lv = fminf(fmaxf(mom[il], -30.0f), 20.0f), sd = expf(0.5f * lv);
            dmom[im] = dz[iz] + (float)(o->kl_weight * norm) * mom[im];
            int clamped = mom[il] < -30.0f || mom[il] > 20.0f;
            dmom[il] = clamped ? 0.0f : dz[iz] * eps[iz] * 0.5f * sd + (float)(o->kl_weight * norm) * 0.5f * (sd * sd - 1.0f);
        }
    if (!o->decoder_only) vae_encode_backward(v, &acts, dmom);
    vae_acts_free(&acts);
    pool_free(img), pool_free(rec), pool_free(drec), pool_free(mom), pool_free(dmom);
    pool_free(z), pool_free(dz), pool_free(eps), pool_free(wmap);
    return rl * norm + o->kl_weight * kl * norm;
}

/* 1/std of the latents of 64 training scenes: the VAE config's scaling_factor. */
static float measure_scaling(Pretrainer *P, int size) {
    const Vae *v = &P->m.vae;
    int n = 64, f = vae_scale_factor(&v->cfg), h = size / f, L = v->cfg.latent_channels;
    size_t per = (size_t)L * h * h;
    float *img = fbuf((size_t)3 * size * size), *mom = fbuf(2 * per), *eps = fbuf(per);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        Scene sc;
        scene_sample(&sc, SCENE_TRAIN, 777, (uint64_t)i);
        scene_render_chw(&sc, SCENE_STYLE_PLAIN, 777, (uint64_t)i, img, size);
        int hh, ww;
        vae_encode(v, mom, img, 1, size, size, &hh, &ww);
        rng_normal(eps, per, stream(777, (uint64_t)i, S_EPS), 0);
        for (size_t q = 0; q < per; q++) {
            float lv = fminf(fmaxf(mom[per + q], -30.0f), 20.0f);
            double zz = mom[q] + expf(0.5f * lv) * eps[q];
            s1 += zz, s2 += zz * zz;
        }
    }
    double cnt = (double)n * per, mean = s1 / cnt, var = s2 / cnt - mean * mean;
    free(img), free(mom), free(eps);
    return var > 0 ? (float)(1.0 / sqrt(var)) : 1.0f;
}

/* ---------------- the diffusion stage ---------------- */

/* Object weights at latent resolution: the mean of each f×f pixel block, then scaled so that every image's
 * weights average 1 (the loss keeps its scale, so the learning rate means what it did without weights). */
static void latent_weights(float *wl, const float *wmap, int B, int size, int f) {
    int h = size / f;
    for (int b = 0; b < B; b++) {
        const float *w = wmap + (size_t)b * size * size;
        float *o = wl + (size_t)b * h * h;
        double tot = 0.0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < h; x++) {
                double acc = 0.0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) acc += w[(size_t)(y * f + dy) * size + x * f + dx];
                o[y * h + x] = (float)(acc / (f * f));
                tot += o[y * h + x];
            }
        for (int q = 0; q < h * h; q++) o[q] = (float)(o[q] * (h * h) / tot);
    }
}

static double diffusion_step(Pretrainer *P, int s, int size, const float *acp) {
    const PretrainOptions *o = &P->o;
    Model *m = &P->m;
    int B = (int)o->batch, f = vae_scale_factor(&m->vae.cfg), h = size / f, C = m->vae.cfg.latent_channels;
    int T = m->sched.num_train_timesteps, Lt = tokenizer_max_length(m->tok), D = m->clip.cfg.hidden;
    int vpred = m->sched.prediction == PRED_V;
    size_t per = (size_t)C * h * h, n = (size_t)B * per, ni = (size_t)B * 3 * size * size;
    float *img = sbuf(ni), *mom = sbuf(2 * n), *x0 = sbuf(n), *noise = sbuf(n), *xt = sbuf(n);
    float *target = sbuf(n), *out = sbuf(n), *dout = sbuf(n), *ctx = sbuf((size_t)B * Lt * D);
    float *u = sbuf((size_t)2 * B), tf[1024];
    char(*cap)[256] = pool_alloc((size_t)B * sizeof *cap);
    const char **capp = pool_alloc((size_t)B * sizeof *capp);
    float *wmap = o->object_weight > 0 ? sbuf((size_t)B * size * size) : NULL;
    float *wlat = wmap ? sbuf((size_t)B * h * h) : NULL;
    step_images(o, s, 0, img, size, cap, wmap);
    if (wlat) latent_weights(wlat, wmap, B, size, f);
    int hh, ww;
    vae_encode(&m->vae, mom, img, B, size, size, &hh, &ww);
    rng_normal(noise, n, stream((uint64_t)o->seed, (uint64_t)s, S_EPS), 0);
    float sf = m->vae.cfg.scaling_factor;
    for (int b = 0; b < B; b++)
        for (size_t q = 0; q < per; q++) {
            const float *mb = mom + (size_t)b * 2 * per;
            float lv = fminf(fmaxf(mb[per + q], -30.0f), 20.0f);
            x0[b * per + q] = (mb[q] + expf(0.5f * lv) * noise[b * per + q]) * sf;
        }
    rng_uniform(u, (size_t)2 * B, stream((uint64_t)o->seed, (uint64_t)s, S_T), 0);
    rng_normal(noise, n, stream((uint64_t)o->seed, (uint64_t)s, S_NOISE), 0);
    int tt[1024];
    for (int b = 0; b < B; b++) {
        tt[b] = LS_MIN(T - 1, (int)(u[b] * (float)T));
        tf[b] = (float)tt[b];
        capp[b] = u[B + b] < o->uncond ? "" : cap[b];
        float a = sqrtf(acp[tt[b]]), sg = sqrtf(1.0f - acp[tt[b]]);
        for (size_t q = 0; q < per; q++) {
            xt[b * per + q] = a * x0[b * per + q] + sg * noise[b * per + q];
            /* the model's prediction type (its scheduler config): ε, or v = α·ε − σ·x0 */
            target[b * per + q] = vpred ? a * noise[b * per + q] - sg * x0[b * per + q] : noise[b * per + q];
        }
    }
    ClipActs cacts = {0};
    UNetActs uacts = {0};
    double l = 0.0;
    if (clip_encode_train(&m->clip, m->tok, &cacts, ctx, capp, B, 1) < 0) {
        l = NAN;
        goto out;
    }
    unet_forward_train(&m->unet, &uacts, out, xt, tf, ctx, B, h, h, Lt);
    for (int b = 0; b < B; b++) {
        double lb = unet_mse_loss_weighted(dout + b * per, out + b * per, target + b * per,
                                           wlat ? wlat + (size_t)b * h * h : NULL, (size_t)h * h, per);
        /* min-SNR-γ (Hang et al. 2023): x0-loss weight min(SNR, γ), i.e. min(SNR, γ)/SNR on the ε loss and
         * min(SNR, γ)/(SNR + 1) on the v loss; for v the SNR is floored at 1, so the pure-noise steps of a
         * zero-terminal-SNR schedule (SNR 0), where the model learns what the caption alone implies, keep
         * weight 1/(SNR + 1) instead of none. */
        double snr = acp[tt[b]] / (1.0 - acp[tt[b]]), wk = 1.0;
        if (o->min_snr > 0) wk = vpred ? fmin(fmax(snr, 1.0), o->min_snr) / (snr + 1.0) : snr > 0 ? fmin(snr, o->min_snr) / snr : 1.0;
        l += wk * lb / B;
        for (size_t q = 0; q < per; q++) dout[b * per + q] *= (float)(wk / B);
    }
    if (isfinite(l)) {
        unet_backward(&m->unet, &uacts, ctx, dout);
        clip_backward(&m->clip, &cacts, ctx);
    }
out:
    clip_acts_free(&cacts);
    unet_acts_free(&uacts);
    pool_free(img), pool_free(mom), pool_free(x0), pool_free(noise), pool_free(xt), pool_free(target);
    pool_free(out), pool_free(dout), pool_free(ctx), pool_free(u), pool_free(cap), pool_free(capp);
    pool_free(wmap), pool_free(wlat);
    return l;
}

/* ---------------- the command ---------------- */

static int usage(FILE *f) {
    fprintf(f,
            "usage: lorastyle pretrain vae|diffusion MODEL [-o OUT] [--work DIR] [--steps N] [--batch B] [--lr X]\n"
            "           [--warmup N (200)] [--checkpoint-every N] [--seed S] [--resume] [--force] [--stop-after N]\n"
            "           [--object-weight W (0)]   vae: [--kl-weight 1e-6] [--edge-weight 1] [--decoder-only]\n"
            "           diffusion: [--uncond 0.1] [--ema 0.999] [--min-snr 5]\n"
            "Trains MODEL's VAE, or its U-Net and text encoder together, from its current weights on streamed\n"
            "synthetic scenes (datasets/scenes.h) and writes the model to OUT (default: MODEL, in place) at every\n"
            "checkpoint and at the end. WORK (default output/pretrain-STAGE) gets checkpoint.safetensors,\n"
            "loss.csv and loss.png; Ctrl-C saves a checkpoint, --resume continues it exactly (with the options the\n"
            "checkpoint recorded, unless given again). --object-weight W weights the loss 1+W within 1.25 radii\n"
            "of each object (for diffusion, averaged to the latent grid and rescaled to mean 1 per image).\n");
    return f == stderr ? 2 : 0;
}

static int parse(PretrainOptions *o, int argc, char **argv) {
    if (argc < 1 || arg_is_help(argv[0])) return usage(argc < 1 ? stderr : stdout) ? LS_ERR : 1;
    if (!strcmp(argv[0], "vae")) o->stage = STAGE_VAE;
    else if (!strcmp(argv[0], "diffusion")) o->stage = STAGE_DIFFUSION;
    else return ls_set_error("pretrain: unknown stage '%s' (vae or diffusion)", argv[0]);
    int vae = o->stage == STAGE_VAE;
    o->steps = vae ? 3000 : 20000, o->batch = vae ? 8 : 16, o->lr = vae ? 4e-4f : 3e-4f;
    o->warmup = -1, o->checkpoint_every = 500, o->seed = 1;
    o->kl_weight = 1e-6f, o->edge_weight = 1.0f, o->uncond = 0.1f, o->ema_decay = 0.999f, o->min_snr = 5.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is_help(a)) return usage(stdout), 1;
        struct {
            const char *flag;
            int *on;
        } bools[] = {{"--resume", &o->resume}, {"--force", &o->force}, {"--quiet", &o->quiet},
                     {"--decoder-only", &o->decoder_only}, {"--overfit", &o->overfit}};
        int is_bool = 0;
        for (size_t k = 0; k < sizeof bools / sizeof *bools; k++)
            if (!strcmp(a, bools[k].flag)) *bools[k].on = 1, is_bool = 1;
        if (is_bool) continue;
        if (a[0] != '-') {
            if (o->model) return ls_set_error("pretrain: unexpected argument '%s'", a);
            o->model = a;
            continue;
        }
        if (arg_need(argc, argv, i) < 0) return LS_ERR;
        if (o->n_given < 16) snprintf(o->given[o->n_given++], sizeof o->given[0], "%s", a);
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "-o")) o->out = v;
        else if (!strcmp(a, "--work")) o->work = v;
        else if (!strcmp(a, "--steps")) rc = arg_int(a, v, 1, 10000000, &o->steps);
        else if (!strcmp(a, "--batch")) rc = arg_int(a, v, 1, 1024, &o->batch);
        else if (!strcmp(a, "--warmup")) rc = arg_int(a, v, 0, 10000000, &o->warmup);
        else if (!strcmp(a, "--checkpoint-every")) rc = arg_int(a, v, 0, 10000000, &o->checkpoint_every);
        else if (!strcmp(a, "--seed")) rc = arg_int(a, v, 0, 0x7fffffffL, &o->seed);
        else if (!strcmp(a, "--stop-after")) rc = arg_int(a, v, 1, 10000000, &o->stop_after);
        else if (!strcmp(a, "--lr")) rc = arg_float(a, v, &o->lr);
        else if (!strcmp(a, "--kl-weight")) rc = arg_float(a, v, &o->kl_weight);
        else if (!strcmp(a, "--edge-weight")) rc = arg_float(a, v, &o->edge_weight);
        else if (!strcmp(a, "--object-weight")) rc = arg_float(a, v, &o->object_weight);
        else if (!strcmp(a, "--uncond")) rc = arg_float(a, v, &o->uncond);
        else if (!strcmp(a, "--ema")) rc = arg_float(a, v, &o->ema_decay);
        else if (!strcmp(a, "--min-snr")) rc = arg_float(a, v, &o->min_snr);
        else rc = ls_set_error("pretrain: unknown option '%s' (lorastyle pretrain --help)", a);
        if (rc < 0) return LS_ERR;
    }
    if (!o->model) return ls_set_error("pretrain: give the model folder to train (make one with lorastyle init --preset base)");
    if (o->warmup < 0) o->warmup = LS_MIN(200, o->steps / 10); /* default */
    if (!(o->lr > 0) || o->warmup > o->steps || o->uncond < 0 || o->uncond > 1 || o->ema_decay < 0 || o->ema_decay >= 1)
        return ls_set_error("pretrain: --lr must be positive, --warmup at most --steps, --uncond in [0,1], --ema in [0,1)");
    if (!o->out) o->out = o->model;
    return 0;
}

static void pretrainer_free(Pretrainer *P) {
    if (P->csv) fclose(P->csv);
    if (P->ema)
        for (int i = 0; i < P->ts.n; i++) free(P->ema[i]);
    free(P->ema);
    adam_free(&P->adam);
    trainset_free(&P->ts);
    model_free(&P->m);
    free(P->hist), free(P->ckpt), free(P->csv_path), free(P->plot);
}

int cmd_pretrain(int argc, char **argv) {
    Pretrainer *P = callocCheck(1, sizeof *P);
    PretrainOptions *o = &P->o;
    int prc = parse(o, argc, argv);
    if (prc != 0) {
        free(P);
        return prc > 0 ? 0 : arg_fail();
    }
    const char *stage = o->stage == STAGE_VAE ? "vae" : "diffusion";
    char wbuf[256];
    if (!o->work) snprintf(wbuf, sizeof wbuf, "output/pretrain-%s", stage), o->work = wbuf;
    int rc = LS_ERR;
    float *acp = NULL;
    P->ckpt = ls_path_join(o->work, "checkpoint.safetensors");
    P->csv_path = ls_path_join(o->work, "loss.csv");
    P->plot = ls_path_join(o->work, "loss.png");
    if (!o->resume && !o->force && ls_file_exists(P->ckpt)) {
        ls_set_error("%s: a checkpoint is there already (--resume to continue it, --force to start over)", P->ckpt);
        goto out;
    }
    if (o->resume && !ls_file_exists(P->ckpt)) {
        ls_set_error("%s: no checkpoint to resume (run without --resume)", P->ckpt);
        goto out;
    }
    if (o->resume && ckpt_read_options(o, P->ckpt) < 0) goto out;
    if (model_load(&P->m, o->model, NULL) < 0 || ls_mkdir_p(o->work) < 0) goto out;
    if (P->m.single_file) {
        ls_set_error("%s: pretrain works on a diffusers folder (lorastyle init --preset base -o DIR)", o->model);
        goto out;
    }
    int size = P->m.unet.cfg.sample_size * vae_scale_factor(&P->m.vae.cfg);
    if (o->stage == STAGE_VAE) {
        if (vae_full_grads_alloc(&P->m.vae, &P->ts) < 0) goto out;
        if (o->decoder_only) { /* keep the decoder's tensors only: the optimizer never touches the encoder */
            int k = 0;
            for (int i = 0; i < P->ts.n; i++) {
                TrainTensor t = P->ts.t[i];
                if (!strncmp(t.name, "decoder.", 8) || !strncmp(t.name, "post_quant_conv.", 16)) P->ts.t[k++] = t;
                else P->ts.n_params -= (int64_t)t.n, free(t.name);
            }
            P->ts.n = k;
        }
    } else {
        if (unet_full_grads_alloc(&P->m.unet, &P->ts) < 0 || clip_full_grads_alloc(&P->m.clip, &P->ts) < 0) goto out;
        P->ema = callocCheck((size_t)P->ts.n, sizeof *P->ema);
        for (int i = 0; i < P->ts.n; i++) {
            P->ema[i] = mallocCheck(P->ts.t[i].n * sizeof(float));
            memcpy(P->ema[i], P->ts.t[i].p, P->ts.t[i].n * sizeof(float));
        }
        acp = fbuf(P->m.sched.num_train_timesteps);
        sched_alphas_cumprod(&P->m.sched, acp);
    }
    adam_init(&P->adam, &P->ts);
    P->hist = callocCheck((size_t)o->steps, sizeof(float));
    if (o->resume && ckpt_load(P) < 0) goto out;
    if (o->resume) { /* keep the log's rows up to the checkpoint */
        if (ls_file_exists(P->csv_path) && train_csv_truncate(P->csv_path, P->step) < 0) goto out;
    }
    P->csv = fopen(P->csv_path, o->resume ? "a" : "w");
    if (!P->csv) {
        ls_set_error("%s: cannot write: %s", P->csv_path, strerror(errno));
        goto out;
    }
    if (!o->resume) fprintf(P->csv, "step,loss,lr,grad_norm,seconds\n");
    if (!o->quiet)
        fprintf(stderr, "lorastyle: pretraining the %s of %s: %lld parameters, %dx%d scenes, batch %ld, %ld steps%s (%d threads)\n",
                o->stage == STAGE_VAE ? "VAE" : "U-Net and text encoder", o->model, (long long)P->ts.n_params, size,
                size, o->batch, o->steps, o->resume ? " (resumed)" : "", op_num_threads());
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    g_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    double t0 = ls_time(), ema_loss = 0, ema_w = 0;
    int start = P->step;
    rc = LS_OK;
    while (P->step < o->steps && rc == LS_OK) {
        int s = P->step;
        float lr = lr_at(o, s);
        trainset_zero_grads(&P->ts);
        double loss = o->stage == STAGE_VAE ? vae_step(P, s, size) : diffusion_step(P, s, size, acp);
        double gn = isfinite(loss) ? sqrt(trainset_grad_sumsq(&P->ts)) : NAN;
        if (!isfinite(loss) || !isfinite(gn)) {
            rc = ls_set_error("pretraining stopped at step %d: the %s is not finite (lower --lr); the last "
                              "checkpoint (%s) is kept", s + 1, isfinite(loss) ? "gradient norm" : "loss", P->ckpt);
            break;
        }
        adamw_step(&P->ts, &P->adam, lr, s + 1, gn > 1.0 ? (float)(1.0 / (gn + 1e-6)) : 1.0f, 1e-2);
        if (P->ema) {
            float d = fminf(o->ema_decay, (1.0f + s) / (10.0f + s));
            for (int i = 0; i < P->ts.n; i++)
                for (size_t j = 0; j < P->ts.t[i].n; j++) P->ema[i][j] = d * P->ema[i][j] + (1 - d) * P->ts.t[i].p[j];
        }
        P->hist[s] = (float)loss;
        P->step = s + 1;
        fprintf(P->csv, "%d,%.6g,%.6g,%.6g,%.3f\n", P->step, loss, (double)lr, gn, ls_time() - t0);
        ema_loss = 0.98 * ema_loss + 0.02 * loss, ema_w = 0.98 * ema_w + 0.02;
        int last = P->step == o->steps;
        if (o->stop_after > 0 && P->step - start >= o->stop_after) g_stop = 1; /* as Ctrl-C (tests) */
        if (!o->quiet && (P->step % 50 == 0 || last)) {
            double el = ls_time() - t0, rate = (P->step - start) / el;
            fprintf(stderr, "lorastyle: %s step %d/%ld  loss %.5f  lr %.2e  %.2f s/step  ETA %.0f min\n", stage,
                    P->step, o->steps, ema_loss / ema_w, (double)lr, 1.0 / rate, (o->steps - P->step) / rate / 60.0);
        }
        if (last || g_stop || (o->checkpoint_every > 0 && P->step % o->checkpoint_every == 0)) {
            fflush(P->csv);
            if (last && o->stage == STAGE_VAE && !o->decoder_only) {
                P->m.vae.cfg.scaling_factor = measure_scaling(P, size);
                if (!o->quiet)
                    fprintf(stderr, "lorastyle: latent scaling factor %.5f (1/std of the latents)\n",
                            (double)P->m.vae.cfg.scaling_factor);
            }
            if (ckpt_save(P) < 0 || save_model(P, o->out, ST_F32) < 0 ||
                train_loss_plot(P->plot, P->hist, P->step, NULL, NULL, 0, stage) < 0)
                rc = LS_ERR;
            if (g_stop && rc == LS_OK && !last) {
                rc = ls_set_error("interrupted at step %d of %ld: checkpoint saved to %s; continue with: lorastyle "
                                  "pretrain %s %s --work %s -o %s --resume", P->step, o->steps, P->ckpt, stage,
                                  o->model, o->work, o->out);
                sigaction(SIGINT, &old_int, NULL), sigaction(SIGTERM, &old_term, NULL);
                pretrainer_free(P), free(acp), free(P);
                arg_fail();
                return 130;
            }
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc == LS_OK && !o->quiet)
        fprintf(stderr, "lorastyle: %s pretraining done in %.1f min; model written to %s\n", stage,
                (ls_time() - t0) / 60.0, o->out);
out:
    pretrainer_free(P);
    free(acp);
    free(P);
    return rc == LS_OK ? 0 : arg_fail();
}
