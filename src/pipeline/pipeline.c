/* pipeline.c — tokenise → encode text → sample latents with classifier-free guidance → VAE decode. */
#include "pipeline.h"

#include <math.h>
#include <string.h>

#include "common.h"   // defines: ls_set_error, ls_warn
#include "infotext.h" // defines: infotext_quote
#include "pool.h"     // defines: pool_alloc, pool_free (the prompt's token ids)
#include "rng.h"    // defines: rng_normal

#define LS_VERSION "0.1.0"

void gen_params_init(GenParams *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->negative = "";
    p->steps = 20;
    p->cfg = 7.5f;
    p->sampler = SAMPLER_EULER_A;
    p->seed = 0;
    p->batch = 1;
    p->clip_skip = 1;
}

int gen_params_check(const Model *m, GenParams *p) {
    int f = vae_scale_factor(&m->vae.cfg);
    if (p->width == 0) p->width = m->unet.cfg.sample_size * f;
    if (p->height == 0) p->height = m->unet.cfg.sample_size * f;
    if (p->width <= 0 || p->width % f)
        return ls_set_error("--width %d must be a positive multiple of %d for this model", p->width, f);
    if (p->height <= 0 || p->height % f)
        return ls_set_error("--height %d must be a positive multiple of %d for this model", p->height, f);
    if (p->width > 4096 || p->height > 4096)
        return ls_set_error("image size %dx%d is too large (at most 4096x4096)", p->width, p->height);
    if (p->steps < 1 || p->steps > SCHED_MAX_STEPS)
        return ls_set_error("--steps %d must be between 1 and %d", p->steps, SCHED_MAX_STEPS);
    if (!isfinite(p->cfg) || p->cfg < 0 || p->cfg > 100)
        return ls_set_error("--cfg %g must be a number between 0 and 100", (double)p->cfg);
    if (p->batch < 1 || p->batch > 64) return ls_set_error("--batch %d must be between 1 and 64", p->batch);
    if (p->clip_skip < 1 || p->clip_skip > m->clip.cfg.layers)
        return ls_set_error("--clip-skip %d must be between 1 and %d", p->clip_skip, m->clip.cfg.layers);
    if (!p->prompt) p->prompt = "";
    if (!p->negative) p->negative = "";
    return LS_OK;
}

int pipeline_encode_prompt(Model *m, const char *text, int clip_skip, float *ctx) {
    int L = tokenizer_max_length(m->tok);
    int *ids = pool_alloc((size_t)L * sizeof(int));
    int dropped = 0;
    if (tokenizer_encode(m->tok, text, ids, L, &dropped) < 0) {
        pool_free(ids);
        return ls_error_context("prompt");
    }
    op_sync(); /* ctx may still be read by queued ops of a previous generation */
    if (dropped > 0)
        ls_warn("prompt is longer than %d tokens; %d token%s at the end were ignored", L - 2, dropped,
                dropped == 1 ? "" : "s");
    int rc = clip_forward(&m->clip, ctx, ids, 1, L, clip_skip - 1);
    pool_free(ids);
    op_sync(); /* the caller may read ctx on the host */
    return rc;
}

/* Initial noise (B,C,h,w): from init_latent, else image b from rng stream seed+b. */
static int initial_noise(const GenParams *p, float *x, int B, int C, int h, int w) {
    size_t per = (size_t)C * h * w;
    if (!p->init_latent) {
        for (int b = 0; b < B; b++) rng_normal(x + b * per, per, p->seed + (uint64_t)b, 0);
        return LS_OK;
    }
    StFile f;
    LS_TRY(st_open(&f, p->init_latent));
    if (f.n_tensors != 1) {
        st_close(&f);
        return ls_set_error("%s: --init-latent file must hold exactly one tensor", p->init_latent);
    }
    const StTensor *t = &f.tensors[0];
    int ok = (t->ndim == 4 && t->shape[1] == C && t->shape[2] == h && t->shape[3] == w &&
              (t->shape[0] == B || t->shape[0] == 1)) ||
             (t->ndim == 3 && t->shape[0] == C && t->shape[1] == h && t->shape[2] == w);
    if (!ok) {
        st_close(&f);
        return ls_set_error("%s: latent shape does not match (%d,%d,%d,%d) for this size and batch",
                            p->init_latent, B, C, h, w);
    }
    int rc = st_to_f32(&f, t, x, 1);
    if (rc == 0 && (size_t)t->numel == per)
        for (int b = 1; b < B; b++) memcpy(x + b * per, x, per * sizeof(float));
    st_close(&f);
    return rc;
}

static int cancelled(void) {
    ls_set_error("cancelled");
    return LS_CANCELLED;
}

/* x̂0 of step i from the state x before the step and the (guided) model output mo — the same data
 * prediction the samplers use internally: Euler family in VE space (x = x0 + σ·ε); DDIM and DPM++ in VP
 * space (x = √ᾱ·x0 + √(1−ᾱ)·ε, DPM++ taking ᾱ from its sigma). */
static void predict_x0(const Sampler *s, int i, float *x0, const float *x, const float *mo, size_t n) {
    int v = s->cfg.prediction == PRED_V;
    if (s->kind == SAMPLER_EULER || s->kind == SAMPLER_EULER_A) {
        float sigma = s->sigmas[i], s2p1 = sigma * sigma + 1.0f, cv = -sigma / sqrtf(s2p1);
        for (size_t j = 0; j < n; j++) x0[j] = v ? mo[j] * cv + x[j] / s2p1 : x[j] - sigma * mo[j];
        return;
    }
    float a, sg; /* √ᾱ, √(1−ᾱ) */
    if (s->kind == SAMPLER_DDIM) {
        float ac = s->alphas_cumprod[(int)s->timesteps[i]];
        a = sqrtf(ac);
        sg = sqrtf(1.0f - ac);
    } else {
        a = 1.0f / sqrtf(s->sigmas[i] * s->sigmas[i] + 1.0f);
        sg = s->sigmas[i] * a;
    }
    for (size_t j = 0; j < n; j++) x0[j] = v ? a * x[j] - sg * mo[j] : (x[j] - sg * mo[j]) / a;
}

int pipeline_generate(Model *m, const GenParams *p0, Image *images, float **latents_out) {
    GenParams p = *p0;
    LS_TRY(gen_params_check(m, &p));
    int B = p.batch, f = vae_scale_factor(&m->vae.cfg), C = m->unet.cfg.in_channels;
    int h = p.height / f, w = p.width / f, L = tokenizer_max_length(m->tok), D = m->clip.cfg.hidden;
    if (m->unet.cfg.cross_attention_dim != D)
        return ls_set_error("%s: text encoder width %d does not match the U-Net's cross_attention_dim %d",
                            m->path, D, m->unet.cfg.cross_attention_dim);
    int guided = p.cfg > 1.0f;
    int nb = guided ? 2 * B : B; /* U-Net batch: [uncond × B, cond × B] as diffusers concatenates */
    size_t per = (size_t)C * h * w, ctxn = (size_t)L * D;

    /* every buffer of the run in the backend's memory (pool); the host touches them only after op_sync */
    float *ctx = sbuf((size_t)nb * ctxn);
    float *cond = guided ? ctx + (size_t)B * ctxn : ctx;
    if (pipeline_encode_prompt(m, p.prompt, p.clip_skip, cond) < 0) {
        pool_free(ctx);
        return LS_ERR;
    }
    op_sync();
    for (int b = 1; b < B; b++) memcpy(cond + b * ctxn, cond, ctxn * sizeof(float));
    if (guided) {
        /* diffusers does not apply clip_skip to the negative prompt it encodes itself; A1111 does. We
         * follow A1111, where the setting comes from. */
        if (pipeline_encode_prompt(m, p.negative, p.clip_skip, ctx) < 0) {
            pool_free(ctx);
            return LS_ERR;
        }
        op_sync();
        for (int b = 1; b < B; b++) memcpy(ctx + b * ctxn, ctx, ctxn * sizeof(float));
    }

    Sampler s;
    if (sampler_init(&s, &m->sched, p.sampler, p.steps, p.karras) < 0) {
        pool_free(ctx);
        return LS_ERR;
    }
    float *x = sbuf((size_t)B * per), *xin = sbuf((size_t)nb * per), *eps = sbuf((size_t)nb * per);
    float *tt = sbuf((size_t)nb), *noise = sampler_needs_noise(&s) ? sbuf((size_t)B * per) : NULL, *x0 = NULL;
    int rc = initial_noise(&p, x, B, C, h, w);
    if (rc == 0) {
        op_scale(x, x, s.init_noise_sigma, (size_t)B * per);
        for (int i = 0; i < s.n; i++) {
            if (p.cancel && p.cancel(p.user)) {
                rc = cancelled();
                break;
            }
            sampler_scale_input(&s, i, xin, x, (size_t)B * per);
            op_sync(); /* the host copies xin and writes tt and noise */
            if (guided) memcpy(xin + (size_t)B * per, xin, (size_t)B * per * sizeof(float));
            for (int b = 0; b < nb; b++) tt[b] = s.timesteps[i];
            unet_forward(&m->unet, eps, xin, tt, ctx, nb, h, w, L);
            if (guided) { /* ε = ε_u + g·(ε_c − ε_u) */
                op_cfg_combine(eps, eps + (size_t)B * per, p.cfg, (size_t)B * per);
            }
            op_sync();
            if (noise) /* ancestral noise of image b: stream seed+b, after its initial noise */
                for (int b = 0; b < B; b++)
                    rng_normal(noise + b * per, per, p.seed + (uint64_t)b, (uint64_t)(i + 1) * per);
            int preview = p.on_latents && p.preview_every > 0 && (i + 1) % p.preview_every == 0 && i + 1 < s.n;
            if (preview) {
                if (!x0) x0 = sbuf(per);
                op_sync(); /* predict_x0 reads x and eps on the host */
                predict_x0(&s, i, x0, x, eps, per); /* image 0; before the step overwrites x */
            }
            sampler_step(&s, i, x, eps, (size_t)B * per, noise);
            if (p.on_step) p.on_step(i + 1, s.n, p.user);
            if (preview) p.on_latents(i + 1, s.n, x0, C, h, w, p.user);
        }
        if (rc == 0 && p.cancel && p.cancel(p.user)) rc = cancelled();
    }
    if (rc == 0) {
        pipeline_decode(m, x, B, h, w, images);
        if (latents_out) {
            *latents_out = x;
            x = NULL;
        }
    }
    sampler_free(&s);
    pool_free(x);
    pool_free(xin);
    pool_free(eps);
    pool_free(tt);
    pool_free(noise);
    pool_free(x0);
    pool_free(ctx);
    return rc;
}

void pipeline_decode(Model *m, const float *latents, int B, int h, int w, Image *images) {
    /* image = vae.decode(latents / scaling_factor) */
    int f = vae_scale_factor(&m->vae.cfg), oc = m->vae.cfg.out_channels, H = h * f, W = w * f;
    size_t n = (size_t)B * m->unet.cfg.in_channels * h * w;
    float *z = sbuf(n);
    op_divide(z, latents, m->vae.cfg.scaling_factor, n);
    float *img = sbuf((size_t)B * oc * W * H);
    vae_decode(&m->vae, img, z, B, h, w);
    op_sync();
    for (int b = 0; b < B; b++) image_from_chw(&images[b], img + (size_t)b * oc * W * H, H, W);
    pool_free(img);
    pool_free(z);
}

char *pipeline_parameters_text(Model *m, const GenParams *p, int b) {
    const char *prompt = p->display_prompt ? p->display_prompt : p->prompt;
    const char *extra = p->extra_params ? p->extra_params : "";
    char *model = infotext_quote(m->name);
    size_t cap = strlen(prompt) + strlen(p->negative ? p->negative : "") + strlen(extra) + strlen(model) + 1024;
    char *s = mallocCheck(cap);
    int k = snprintf(s, cap, "%s\n", prompt);
    if (p->negative && p->negative[0]) k += snprintf(s + k, cap - (size_t)k, "Negative prompt: %s\n", p->negative);
    /* A1111 >= 1.9: the schedule in its own field ("DPM++ 2M" + "Karras", not "DPM++ 2M Karras") */
    k += snprintf(s + k, cap - (size_t)k,
                  "Steps: %d, Sampler: %s, Schedule type: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model hash: %s, "
                  "Model: %s",
                  p->steps, sampler_display_name(p->sampler, 0), p->karras ? "Karras" : "Automatic", (double)p->cfg,
                  (unsigned long long)(p->seed + (uint64_t)b), p->width, p->height, model_hash(m), model);
    if (p->clip_skip > 1) k += snprintf(s + k, cap - (size_t)k, ", Clip skip: %d", p->clip_skip);
    k += snprintf(s + k, cap - (size_t)k, "%s", extra);
    snprintf(s + k, cap - (size_t)k, ", Version: lorastyle %s", LS_VERSION);
    free(model);
    return s;
}
