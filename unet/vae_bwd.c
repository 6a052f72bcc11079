/* vae_bwd.c — see vae_bwd.h. The backwards walk the forwards' layers (vae.c) in reverse. The two halves
 * share the level and mid-block code: an encoder level is resnets then a stride-2 conv (pad right/bottom), a
 * decoder level resnets then a ×2 nearest upsample and a 3×3 conv. */
#include "vae_bwd.h"

#include <string.h>

void vae_coder_acts_free(VaeCoderActs *a) {
    pool_free(a->in), pool_free(a->pq), pool_free(a->h_in);
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        VaeLevelActs *l = &a->levels[i];
        for (int j = 0; j < l->n; j++) {
            resblock_acts_free(&l->res[j]);
            pool_free(l->res_out[j]);
        }
        pool_free(l->res), pool_free(l->res_out), pool_free(l->sampler_out);
    }
    resblock_acts_free(&a->mid_res[0]);
    resblock_acts_free(&a->mid_res[1]);
    vae_attn_acts_free(&a->mid_attn);
    for (int k = 0; k < 3; k++) pool_free(a->mid_out[k]);
    pool_free(a->mean_out), pool_free(a->rstd_out), pool_free(a->conv_out);
    memset(a, 0, sizeof *a);
}

void vae_acts_free(VaeActs *acts) {
    vae_coder_acts_free(&acts->enc);
    vae_coder_acts_free(&acts->dec);
}

/* Output of a level: its sampler's, else its last resnet's. */
static const float *level_out(const VaeLevelActs *l) { return l->sampler_out ? l->sampler_out : l->res_out[l->n - 1]; }
/* Output of the mid block, and the input of its second resnet. */
static const float *mid_res1_in(const VaeCoderActs *a) { return a->mid_out[1] ? a->mid_out[1] : a->mid_out[0]; }

/* ---------------- shared backward pieces ---------------- */

/* Backward of the head y = conv_out(silu(conv_norm_out(x))): dy → dx (B,C,H,W), x the forward's input. */
static void out_backward(const VaeCoder *cd, const VaeCoderActs *a, float *dx, const float *dy, const float *x,
                         int B, int C, int H, int W) {
    norm_silu_conv_backward(&cd->norm_out, &cd->conv_out, dx, dy, x, a->mean_out, a->rstd_out, B, C, H, W);
}

/* Backward of the mid block (mid_forward): dh (B,C,H,W) holds the gradient of the mid output on entry and
 * of its input x on return. */
static void mid_backward(const VaeCoder *cd, const VaeCoderActs *a, float *dh, const float *x, int B, int C,
                         int H, int W) {
    size_t n = (size_t)B * C * H * W;
    float *d = sbuf(n);
    resblock_backward(&cd->mid_res[1], &a->mid_res[1], d, NULL, dh, mid_res1_in(a), NULL, B, H, W);
    if (a->mid_out[1]) {
        vae_attn_backward(&cd->mid_attn, &a->mid_attn, dh, d, a->mid_out[0], B, H, W);
        memcpy(d, dh, n * sizeof(float));
    }
    resblock_backward(&cd->mid_res[0], &a->mid_res[0], dh, NULL, d, x, NULL, B, H, W);
    pool_free(d);
}

/* Backward of a level (level_forward): dy (B,cout,Ho,Wo), the gradient of the level's output → a new buffer
 * (B,cin,H,W), the gradient of its input x (returned; pool memory the caller gives back). dy (pool memory) is
 * given back. */
static float *level_backward(const VaeLevel *lv, const VaeLevelActs *l, float *dy, const float *x, int up,
                             int B) {
    int C = lv->resnets[lv->n - 1].cout, HW = l->H * l->W;
    float *dh = dy;
    if (lv->has_sample) {
        const float *h = l->res_out[l->n - 1];
        float *d = sbuf((size_t)B * C * HW);
        if (up) { /* out = conv(upsample(h)) */
            size_t nu = (size_t)B * C * l->Ho * l->Wo;
            float *u = sbuf(nu), *du = sbuf(nu);
            if (conv_needs_input(&lv->sample)) op_upsample_nearest(u, h, B, C, l->H, l->W, l->Ho, l->Wo);
            conv_backward(&lv->sample, du, dh, u, B, l->Ho, l->Wo);
            op_upsample_nearest_backward(d, du, B, C, l->H, l->W, l->Ho, l->Wo);
            pool_free(u);
            pool_free(du);
        } else { /* out = conv_s2(h) */
            conv_backward(&lv->sample, d, dh, h, B, l->H, l->W);
        }
        pool_free(dh);
        dh = d;
    }
    for (int j = l->n - 1; j >= 0; j--) {
        const ResBlock *r = &lv->resnets[j];
        float *d = sbuf((size_t)B * r->cin * HW);
        resblock_backward(r, &l->res[j], d, NULL, dh, j > 0 ? l->res_out[j - 1] : x, NULL, B, l->H, l->W);
        pool_free(dh);
        dh = d;
    }
    return dh;
}

/* ---------------- encoder ---------------- */

void vae_encode_backward(const Vae *v, const VaeActs *acts, const float *dmoments) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *e = &v->enc;
    const VaeCoderActs *a = &acts->enc;
    int n = c->n_levels, B = a->B, h = a->Hout, w = a->Wout, Cl = c->block_out[n - 1];
    LS_ASSERT(a->in != NULL); /* vae_encode_train filled acts */
    const float *dm = dmoments;
    float *dconv = NULL;
    if (c->use_quant_conv) {
        dconv = sbuf((size_t)B * 2 * c->latent_channels * h * w);
        conv_backward(&v->quant_conv, dconv, dmoments, a->conv_out, B, h, w);
        dm = dconv;
    }
    float *dh = sbuf((size_t)B * Cl * h * w);
    out_backward(e, a, dh, dm, a->mid_out[2], B, Cl, h, w);
    pool_free(dconv);
    mid_backward(e, a, dh, level_out(&a->levels[n - 1]), B, Cl, h, w);
    for (int i = n - 1; i >= 0; i--)
        dh = level_backward(&e->levels[i], &a->levels[i], dh, i > 0 ? level_out(&a->levels[i - 1]) : a->h_in, 0, B);
    conv_backward(&e->conv_in, NULL, dh, a->in, B, a->H, a->W); /* the image is data: no dx */
    pool_free(dh);
}

/* ---------------- decoder ---------------- */

void vae_decode_backward(const Vae *v, const VaeActs *acts, float *dz, const float *dimg) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *d = &v->dec;
    const VaeCoderActs *a = &acts->dec;
    int n = c->n_levels, B = a->B, H = a->Hout, W = a->Wout, h = a->H, w = a->W;
    int C0 = c->block_out[0], Cl = c->block_out[n - 1], Lt = c->latent_channels;
    LS_ASSERT(a->in != NULL); /* vae_decode_train filled acts */
    float *dh = sbuf((size_t)B * C0 * H * W);
    out_backward(d, a, dh, dimg, level_out(&a->levels[n - 1]), B, C0, H, W);
    for (int i = n - 1; i >= 0; i--)
        dh = level_backward(&d->levels[i], &a->levels[i], dh, i > 0 ? level_out(&a->levels[i - 1]) : a->mid_out[2], 1, B);
    mid_backward(d, a, dh, a->h_in, B, Cl, h, w);
    /* h_in = conv_in(post_quant_conv(z)) (or conv_in(z)) */
    size_t nz = (size_t)B * Lt * h * w;
    if (c->use_post_quant_conv && (dz || conv_needs_input(&v->post_quant_conv))) {
        float *dpq = sbuf(nz);
        conv_backward(&d->conv_in, dpq, dh, a->pq, B, h, w);
        conv_backward(&v->post_quant_conv, dz, dpq, a->in, B, h, w);
        pool_free(dpq);
    } else {
        conv_backward(&d->conv_in, c->use_post_quant_conv ? NULL : dz, dh, c->use_post_quant_conv ? a->pq : a->in,
                      B, h, w);
    }
    pool_free(dh);
}

/* ---------------- full training ---------------- */

int vae_full_grads_alloc(Vae *v, TrainSet *ts) {
    return layers_full_grads_alloc(&v->wt, ts, "VAE");
}

void vae_full_grads_free(Vae *v) { wt_grads_free(&v->wt); }
