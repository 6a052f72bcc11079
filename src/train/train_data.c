/* train_data.c — latents and text embeddings for training (train_internal.h): computed once from the
 * VAE and the text encoder, kept in memory and in the on-disk cache. */
#include "train_internal.h"

#include <math.h>
#include <string.h>

#include "common.h"   // defines: ls_time, ls_warn, mallocCheck
#include "pipeline.h" // defines: pipeline_encode_prompt
#include "rng.h"      // defines: rng_normal
#include "vae.h"      // defines: vae_encode, vae_scale_factor

/* The VAE moments of item i (flipped or not): from memory, the disk cache, or the encoder. hits/misses
 * count disk-cache lookups of latents and text embeddings together. */
static const float *get_moments(DataCache *c, int i, int flip, int *h, int *w) {
    int j = 2 * i + flip;
    if (!c->mom[j] && c->released) {
        ls_set_error("internal: latent %d/%d was not cached before the VAE was released", i, flip);
        return NULL;
    }
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
        /* the encoder works in the backend's memory; the cache keeps a host copy */
        size_t nmom = (size_t)2 * C * hh * ww;
        float *img = sbuf((size_t)3 * it->th * it->tw), *dmom = sbuf(nmom);
        if (dataset_load_item(c->d, i, img, flip) < 0) {
            pool_free(img), pool_free(dmom), free(mom), free(path);
            return NULL;
        }
        int eh, ew;
        vae_encode(v, dmom, img, 1, it->th, it->tw, &eh, &ew);
        op_sync();
        memcpy(mom, dmom, nmom * sizeof(float));
        pool_free(img), pool_free(dmom);
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
int datacache_latent(DataCache *c, int i, int flip, float *lat, int *h, int *w) {
    const float *mom = get_moments(c, i, flip, h, w);
    if (!mom) return LS_ERR;
    const Vae *v = &c->m->vae;
    size_t n = (size_t)v->cfg.latent_channels * *h * *w;
    rng_normal(lat, n, train_stream(c->seed, (uint64_t)(2 * i + flip), P_VAE), 0);
    float sf = v->cfg.scaling_factor;
    for (size_t k = 0; k < n; k++) {
        float lv = mom[n + k] < -30.0f ? -30.0f : mom[n + k] > 20.0f ? 20.0f : mom[n + k];
        lat[k] = (mom[k] + expf(0.5f * lv) * lat[k]) * sf;
    }
    return LS_OK;
}

int datacache_ctx(DataCache *c, const char *text, float *out) {
    size_t n = (size_t)c->L * c->D;
    for (int i = 0; i < c->n_text; i++)
        if (!strcmp(c->text[i], text)) {
            memcpy(out, c->ctx[i], n * sizeof(float));
            return LS_OK;
        }
    if (c->released) return ls_set_error("internal: caption \"%s\" was not cached before the text encoder was "
                                         "released", text);
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
        c->text[c->n_text] = strdupCheck(text);
        c->ctx[c->n_text] = mallocCheck(n * sizeof(float));
        memcpy(c->ctx[c->n_text], out, n * sizeof(float));
        c->n_text++;
    }
    return LS_OK;
}

void datacache_free(DataCache *c) {
    if (c->mom)
        for (int j = 0; j < 2 * c->d->n_items; j++) free(c->mom[j]);
    for (int i = 0; i < c->n_text; i++) free(c->text[i]), free(c->ctx[i]);
    free(c->mom), free(c->lh), free(c->lw), free(c->text), free(c->ctx);
}

/* Encode every latent (each image, both flips with --flip) and, when captions do not change from step to
 * step, every caption's text embedding before the first step — kohya's "caching latents" phase: the steps
 * then cost the same from the first one (steady it/s and ETA), and a bad image fails before training.
 * Values do not depend on the order they are computed in, so this changes no result. */
int train_precache(Trainer *T) {
    const TrainOptions *o = &T->o;
    int flips = o->flip ? 2 : 1, total = 0, done = 0, hits0 = T->dc.hits;
    for (int i = 0; i < T->d.n_items; i++) total += T->d.items[i].repeats ? flips : 1; /* held out: unflipped */
    int texts = !T->capv && train_captions_fixed(o); /* else encoded as they come */
    double t0 = ls_time(), last = t0;
    float *ctx = texts ? sbuf((size_t)T->dc.L * T->dc.D) : NULL; /* the text encoder's output: backend memory */
    int rc = LS_OK;
    for (int i = 0; i < T->d.n_items && rc == LS_OK; i++) {
        if (train_interrupted()) {
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
                datacache_ctx(&T->dc, T->captxt, ctx) < 0)
                rc = LS_ERR;
        }
        if (!o->quiet && (ls_time() - last > 1.0 || done == total)) {
            last = ls_time();
            fprintf(stderr, T->tty ? "\rlorastyle: caching latents %d/%d (%d from the disk cache) " : "lorastyle: "
                    "caching latents %d/%d (%d from the disk cache)\n", done, total, T->dc.hits - hits0);
        }
    }
    if (rc == LS_OK && texts && o->caption_dropout > 0) rc = datacache_ctx(&T->dc, "", ctx);
    pool_free(ctx);
    if (!o->quiet && T->tty) fputc('\n', stderr);
    if (!o->quiet && rc == LS_OK && total > 0)
        fprintf(stderr, "lorastyle: %d latents ready in %.1f s\n", total, ls_time() - t0);
    return rc;
}

void train_release_encoders(Trainer *T) {
    const TrainOptions *o = &T->o;
    if (o->samples || T->capv || o->method == METHOD_FULL || !train_captions_fixed(o) ||
        train_style_curve_n(o, T->res) > 0 ||
        T->dc.n_text >= MAX_TEXT_CACHE)
        return;
    T->released_bytes = wt_release(&T->m.vae.wt) + wt_release(&T->m.clip.wt);
    T->dc.released = 1;
}
