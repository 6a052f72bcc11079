/* vae_train.c — see vae_train.h. The training forwards follow vae_encode / vae_decode (vae.c) layer by
 * layer; the backwards walk the same layers in reverse. The two halves share the level and mid-block code:
 * an encoder level is resnets then a stride-2 conv (pad right/bottom), a decoder level resnets then a ×2
 * nearest upsample and a 3×3 conv. */
#include "vae_train.h"

#include <string.h>

/* A saved buffer of n floats, counted in a->bytes. */
static float *save_buf(VaeCoderActs *a, size_t n) {
    a->bytes += n * sizeof(float);
    return fbuf(n);
}

static void coder_acts_free(VaeCoderActs *a) {
    free(a->in), free(a->pq), free(a->h_in);
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        VaeLevelActs *l = &a->levels[i];
        for (int j = 0; j < l->n; j++) {
            resblock_acts_free(&l->res[j]);
            free(l->res_out[j]);
        }
        free(l->res), free(l->res_out), free(l->sampler_out);
    }
    resblock_acts_free(&a->mid_res[0]);
    resblock_acts_free(&a->mid_res[1]);
    vae_attn_acts_free(&a->mid_attn);
    for (int k = 0; k < 3; k++) free(a->mid_out[k]);
    free(a->mean_out), free(a->rstd_out), free(a->conv_out);
    memset(a, 0, sizeof *a);
}

void vae_acts_free(VaeActs *acts) {
    coder_acts_free(&acts->enc);
    coder_acts_free(&acts->dec);
}

/* Output of a level: its sampler's, else its last resnet's. */
static const float *level_out(const VaeLevelActs *l) { return l->sampler_out ? l->sampler_out : l->res_out[l->n - 1]; }
/* Output of the mid block, and the input of its second resnet. */
static const float *mid_res1_in(const VaeCoderActs *a) { return a->mid_out[1] ? a->mid_out[1] : a->mid_out[0]; }

/* ---------------- shared forward pieces ---------------- */

/* One level on x (B,*C,*H,*W): resnets, then the sampler (up: upsample ×2 + conv; else: stride-2 conv).
 * Updates *C, *H, *W to the level's output; returns the output (owned by l). */
static const float *level_forward_train(const VaeLevel *lv, VaeLevelActs *l, VaeCoderActs *a, const float *x,
                                        int up, int B, int *C, int *H, int *W) {
    l->n = lv->n;
    l->res = callocCheck((size_t)lv->n, sizeof *l->res);
    l->res_out = callocCheck((size_t)lv->n, sizeof *l->res_out);
    l->H = l->Ho = *H;
    l->W = l->Wo = *W;
    const float *h = x;
    for (int j = 0; j < lv->n; j++) {
        const ResBlock *r = &lv->resnets[j];
        l->res_out[j] = save_buf(a, (size_t)B * r->cout * l->H * l->W);
        resblock_forward(r, &l->res[j], l->res_out[j], h, NULL, B, l->H, l->W);
        a->bytes += l->res[j].bytes;
        h = l->res_out[j];
        *C = r->cout;
    }
    if (lv->has_sample) {
        if (up) {
            l->Ho = 2 * l->H, l->Wo = 2 * l->W;
            float *u = fbuf((size_t)B * *C * l->Ho * l->Wo); /* not saved: recomputed by the backward */
            op_upsample_nearest(u, h, B, *C, l->H, l->W, l->Ho, l->Wo);
            l->sampler_out = save_buf(a, (size_t)B * *C * l->Ho * l->Wo);
            conv_forward(&lv->sample, l->sampler_out, u, B, l->Ho, l->Wo, NULL, NULL);
            free(u);
        } else {
            l->Ho = op_conv2d_out(l->H, 3, 2, 0, 1), l->Wo = op_conv2d_out(l->W, 3, 2, 0, 1);
            l->sampler_out = save_buf(a, (size_t)B * *C * l->Ho * l->Wo);
            conv_forward(&lv->sample, l->sampler_out, h, B, l->H, l->W, NULL, NULL);
        }
        h = l->sampler_out;
    }
    *H = l->Ho, *W = l->Wo;
    return h;
}

/* Mid block on x (B,C,H,W): resnet, attention (when configured), resnet. Returns mid_out[2]. */
static const float *mid_forward_train(const VaeCoder *cd, const VaeConfig *c, VaeCoderActs *a, const float *x,
                                      int B, int C, int H, int W) {
    size_t n = (size_t)B * C * H * W;
    a->mid_out[0] = save_buf(a, n);
    resblock_forward(&cd->mid_res[0], &a->mid_res[0], a->mid_out[0], x, NULL, B, H, W);
    if (c->mid_attention) {
        a->mid_out[1] = save_buf(a, n);
        vae_attn_forward(&cd->mid_attn, &a->mid_attn, a->mid_out[1], a->mid_out[0], B, H, W);
    }
    a->mid_out[2] = save_buf(a, n);
    resblock_forward(&cd->mid_res[1], &a->mid_res[1], a->mid_out[2], mid_res1_in(a), NULL, B, H, W);
    a->bytes += a->mid_res[0].bytes + a->mid_attn.bytes + a->mid_res[1].bytes;
    return a->mid_out[2];
}

/* y = conv_out(silu(conv_norm_out(x))), x (B,C,H,W), saving the norm's statistics. */
static void out_forward_train(const VaeCoder *cd, VaeCoderActs *a, float *y, const float *x, int B, int C, int H,
                              int W) {
    const Norm *no = &cd->norm_out;
    a->mean_out = save_buf(a, (size_t)B * no->groups);
    a->rstd_out = save_buf(a, (size_t)B * no->groups);
    float *t = fbuf((size_t)B * C * H * W);
    op_groupnorm_fwd_stats(t, a->mean_out, a->rstd_out, x, no->g, no->b, B, C, H * W, no->groups, no->eps, 1);
    conv_forward(&cd->conv_out, y, t, B, H, W, NULL, NULL);
    free(t);
}

/* ---------------- shared backward pieces ---------------- */

/* Backward of out_forward_train: dy → dx (B,C,H,W), x the forward's input. */
static void out_backward(const VaeCoder *cd, const VaeCoderActs *a, float *dx, const float *dy, const float *x,
                         int B, int C, int H, int W) {
    norm_silu_conv_backward(&cd->norm_out, &cd->conv_out, dx, dy, x, a->mean_out, a->rstd_out, B, C, H, W);
}

/* Backward of mid_forward_train: dh (B,C,H,W) holds the gradient of the mid output on entry and of its
 * input x on return. */
static void mid_backward(const VaeCoder *cd, const VaeCoderActs *a, float *dh, const float *x, int B, int C,
                         int H, int W) {
    size_t n = (size_t)B * C * H * W;
    float *d = fbuf(n);
    resblock_backward(&cd->mid_res[1], &a->mid_res[1], d, NULL, dh, mid_res1_in(a), NULL, B, H, W);
    if (a->mid_out[1]) {
        vae_attn_backward(&cd->mid_attn, &a->mid_attn, dh, d, a->mid_out[0], B, H, W);
        memcpy(d, dh, n * sizeof(float));
    }
    resblock_backward(&cd->mid_res[0], &a->mid_res[0], dh, NULL, d, x, NULL, B, H, W);
    free(d);
}

/* Backward of level_forward_train: dy (B,cout,Ho,Wo), the gradient of the level's output → a new buffer
 * (B,cin,H,W), the gradient of its input x (returned; the caller frees it). dy is freed. */
static float *level_backward(const VaeLevel *lv, const VaeLevelActs *l, float *dy, const float *x, int up,
                             int B) {
    int C = lv->resnets[lv->n - 1].cout, HW = l->H * l->W;
    float *dh = dy;
    if (lv->has_sample) {
        const float *h = l->res_out[l->n - 1];
        float *d = fbuf((size_t)B * C * HW);
        if (up) { /* out = conv(upsample(h)) */
            size_t nu = (size_t)B * C * l->Ho * l->Wo;
            float *u = fbuf(nu), *du = fbuf(nu);
            if (conv_needs_input(&lv->sample)) op_upsample_nearest(u, h, B, C, l->H, l->W, l->Ho, l->Wo);
            conv_backward(&lv->sample, du, dh, u, B, l->Ho, l->Wo);
            op_upsample_nearest_backward(d, du, B, C, l->H, l->W, l->Ho, l->Wo);
            free(u);
            free(du);
        } else { /* out = conv_s2(h) */
            conv_backward(&lv->sample, d, dh, h, B, l->H, l->W);
        }
        free(dh);
        dh = d;
    }
    for (int j = l->n - 1; j >= 0; j--) {
        const ResBlock *r = &lv->resnets[j];
        float *d = fbuf((size_t)B * r->cin * HW);
        resblock_backward(r, &l->res[j], d, NULL, dh, j > 0 ? l->res_out[j - 1] : x, NULL, B, l->H, l->W);
        free(dh);
        dh = d;
    }
    return dh;
}

/* ---------------- encoder ---------------- */

void vae_encode_train(const Vae *v, VaeActs *acts, float *moments, const float *img, int B, int H, int W) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *e = &v->enc;
    VaeCoderActs *a = &acts->enc;
    int C = c->block_out[0], n = c->n_levels, Lt2 = 2 * c->latent_channels;
    coder_acts_free(a);
    a->B = B, a->H = H, a->W = W;
    size_t nin = (size_t)B * c->in_channels * H * W;
    a->in = save_buf(a, nin);
    memcpy(a->in, img, nin * sizeof(float));
    a->h_in = save_buf(a, (size_t)B * C * H * W);
    conv_forward(&e->conv_in, a->h_in, a->in, B, H, W, NULL, NULL);
    const float *h = a->h_in;
    for (int i = 0; i < n; i++) h = level_forward_train(&e->levels[i], &a->levels[i], a, h, 0, B, &C, &H, &W);
    h = mid_forward_train(e, c, a, h, B, C, H, W);
    if (c->use_quant_conv) {
        a->conv_out = save_buf(a, (size_t)B * Lt2 * H * W);
        out_forward_train(e, a, a->conv_out, h, B, C, H, W);
        conv_forward(&v->quant_conv, moments, a->conv_out, B, H, W, NULL, NULL);
    } else {
        out_forward_train(e, a, moments, h, B, C, H, W);
    }
    a->Hout = H, a->Wout = W;
}

void vae_encode_backward(const Vae *v, const VaeActs *acts, const float *dmoments) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *e = &v->enc;
    const VaeCoderActs *a = &acts->enc;
    int n = c->n_levels, B = a->B, h = a->Hout, w = a->Wout, Cl = c->block_out[n - 1];
    LS_ASSERT(a->in != NULL); /* vae_encode_train filled acts */
    const float *dm = dmoments;
    float *dconv = NULL;
    if (c->use_quant_conv) {
        dconv = fbuf((size_t)B * 2 * c->latent_channels * h * w);
        conv_backward(&v->quant_conv, dconv, dmoments, a->conv_out, B, h, w);
        dm = dconv;
    }
    float *dh = fbuf((size_t)B * Cl * h * w);
    out_backward(e, a, dh, dm, a->mid_out[2], B, Cl, h, w);
    free(dconv);
    mid_backward(e, a, dh, level_out(&a->levels[n - 1]), B, Cl, h, w);
    for (int i = n - 1; i >= 0; i--)
        dh = level_backward(&e->levels[i], &a->levels[i], dh, i > 0 ? level_out(&a->levels[i - 1]) : a->h_in, 0, B);
    conv_backward(&e->conv_in, NULL, dh, a->in, B, a->H, a->W); /* the image is data: no dx */
    free(dh);
}

/* ---------------- decoder ---------------- */

void vae_decode_train(const Vae *v, VaeActs *acts, float *img, const float *z, int B, int H, int W) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *d = &v->dec;
    VaeCoderActs *a = &acts->dec;
    int n = c->n_levels, Lt = c->latent_channels, C = c->block_out[n - 1];
    coder_acts_free(a);
    a->B = B, a->H = H, a->W = W;
    size_t nz = (size_t)B * Lt * H * W;
    a->in = save_buf(a, nz);
    memcpy(a->in, z, nz * sizeof(float));
    const float *zin = a->in;
    if (c->use_post_quant_conv) {
        a->pq = save_buf(a, nz);
        conv_forward(&v->post_quant_conv, a->pq, a->in, B, H, W, NULL, NULL);
        zin = a->pq;
    }
    a->h_in = save_buf(a, (size_t)B * C * H * W);
    conv_forward(&d->conv_in, a->h_in, zin, B, H, W, NULL, NULL);
    const float *h = mid_forward_train(d, c, a, a->h_in, B, C, H, W);
    for (int i = 0; i < n; i++) h = level_forward_train(&d->levels[i], &a->levels[i], a, h, 1, B, &C, &H, &W);
    out_forward_train(d, a, img, h, B, C, H, W);
    a->Hout = H, a->Wout = W;
}

void vae_decode_backward(const Vae *v, const VaeActs *acts, float *dz, const float *dimg) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *d = &v->dec;
    const VaeCoderActs *a = &acts->dec;
    int n = c->n_levels, B = a->B, H = a->Hout, W = a->Wout, h = a->H, w = a->W;
    int C0 = c->block_out[0], Cl = c->block_out[n - 1], Lt = c->latent_channels;
    LS_ASSERT(a->in != NULL); /* vae_decode_train filled acts */
    float *dh = fbuf((size_t)B * C0 * H * W);
    out_backward(d, a, dh, dimg, level_out(&a->levels[n - 1]), B, C0, H, W);
    for (int i = n - 1; i >= 0; i--)
        dh = level_backward(&d->levels[i], &a->levels[i], dh, i > 0 ? level_out(&a->levels[i - 1]) : a->mid_out[2], 1, B);
    mid_backward(d, a, dh, a->h_in, B, Cl, h, w);
    /* h_in = conv_in(post_quant_conv(z)) (or conv_in(z)) */
    size_t nz = (size_t)B * Lt * h * w;
    if (c->use_post_quant_conv && (dz || conv_needs_input(&v->post_quant_conv))) {
        float *dpq = fbuf(nz);
        conv_backward(&d->conv_in, dpq, dh, a->pq, B, h, w);
        conv_backward(&v->post_quant_conv, dz, dpq, a->in, B, h, w);
        free(dpq);
    } else {
        conv_backward(&d->conv_in, c->use_post_quant_conv ? NULL : dz, dh, c->use_post_quant_conv ? a->pq : a->in,
                      B, h, w);
    }
    free(dh);
}

/* ---------------- full training ---------------- */

int vae_full_grads_alloc(Vae *v, TrainSet *ts) {
    return layers_full_grads_alloc(&v->wt, ts, "VAE");
}

void vae_full_grads_free(Vae *v) { wt_grads_free(&v->wt); }
