/* unet_bwd.c — see unet_bwd.h. unet_backward walks unet_forward_train's blocks (unet.c) in reverse:
 * conv_out, the up path (last level first), the mid block, the down path, conv_in, and finally the
 * time-embedding MLP whose gradient every resnet fed. */
#include "unet_bwd.h"

#include <string.h>

/* Output of block j of a level (the transformer's when the level has attention). */
static float *block_out(const UNetLevelActs *l, int j) { return l->tr ? l->tr_out[j] : l->res_out[j]; }
/* Output of a whole level: its sampler's, else its last block's. */
static float *level_out(const UNetLevelActs *l) { return l->sampler_out ? l->sampler_out : block_out(l, l->n - 1); }

static void level_free(UNetLevelActs *l) {
    for (int j = 0; j < l->n; j++) {
        resblock_acts_free(&l->res[j]);
        pool_free(l->res_out[j]);
        if (l->tr) {
            transformer2d_acts_free(&l->tr[j]);
            pool_free(l->tr_out[j]);
        }
    }
    pool_free(l->res);
    pool_free(l->res_out);
    pool_free(l->tr);
    pool_free(l->tr_out);
    pool_free(l->sampler_out);
    memset(l, 0, sizeof *l);
}

void unet_acts_free(UNetActs *acts) {
    pool_free(acts->x), pool_free(acts->ctx);
    pool_free(acts->sin_emb), pool_free(acts->e1), pool_free(acts->e1_silu);
    pool_free(acts->emb), pool_free(acts->emb_silu);
    pool_free(acts->h_in);
    for (int i = 0; i < UNET_MAX_LEVELS; i++) {
        level_free(&acts->down[i]);
        level_free(&acts->up[i]);
    }
    resblock_acts_free(&acts->mid_res[0]);
    resblock_acts_free(&acts->mid_res[1]);
    transformer2d_acts_free(&acts->mid_tr);
    for (int i = 0; i < 3; i++) pool_free(acts->mid_out[i]);
    pool_free(acts->mean_out), pool_free(acts->rstd_out);
    memset(acts, 0, sizeof *acts);
}

/* The skip tensors in push order (== unet_forward's stack): conv_in's output, then per down level every
 * block output and the downsampler output. Returns their count. */
typedef struct {
    const float *x;
    int C, H, W;
} Skip;

static int collect_skips(const UNet *u, const UNetActs *acts, Skip *s) {
    int ns = 0;
    s[ns++] = (Skip){acts->h_in, u->cfg.block_out[0], acts->H, acts->W};
    for (int i = 0; i < u->cfg.n_levels; i++) {
        const UNetDown *d = &u->down[i];
        const UNetLevelActs *l = &acts->down[i];
        int C = d->resnets[0].cout;
        for (int j = 0; j < d->n; j++) s[ns++] = (Skip){block_out(l, j), C, l->H, l->W};
        if (d->has_down) s[ns++] = (Skip){l->sampler_out, C, l->Ho, l->Wo};
    }
    return ns;
}

/* ---------------- backward ---------------- */

void unet_backward(const UNet *u, const UNetActs *acts, float *dctx, const float *dout) {
    const UNetConfig *c = &u->cfg;
    int n = c->n_levels, C0 = c->block_out[0], temb = 4 * C0;
    int B = acts->B, H = acts->H, W = acts->W, Tc = acts->Tc;
    const float *ctx = acts->ctx, *emb = acts->emb_silu;
    if (dctx) memset(dctx, 0, (size_t)B * Tc * c->cross_attention_dim * sizeof(float));
    /* the resnets' time-embedding gradients meet in demb (B,temb); needed only for LoRA on the MLP */
    int temb_grad = linear_needs_input(&u->time_1) || linear_needs_input(&u->time_2);
    float *demb = temb_grad ? sbuf((size_t)B * temb) : NULL;
    if (demb) memset(demb, 0, (size_t)B * temb * sizeof(float));

    /* out = conv_out(silu(conv_norm_out(h))), h the last up level's output at full size */
    const float *h = level_out(&acts->up[n - 1]);
    size_t nh = (size_t)B * C0 * H * W;
    float *dh = sbuf(nh);
    norm_silu_conv_backward(&u->norm_out, &u->conv_out, dh, dout, h, acts->mean_out, acts->rstd_out, B, C0, H, W);

    Skip skips[UNET_MAX_SKIPS];
    float *dskips[UNET_MAX_SKIPS] = {0}; /* gradient of each skip through the up path's concatenations */
    int S = collect_skips(u, acts, skips), ns = 0;

    /* up path in reverse; dh is the gradient of the current level's output */
    for (int i = n - 1; i >= 0; i--) {
        const UNetUp *b = &u->up[i];
        const UNetLevelActs *l = &acts->up[i];
        int HW = l->H * l->W;
        int C = b->resnets[b->n - 1].cout;
        if (b->has_up) { /* out = conv(upsample(block_out)) */
            size_t nu = (size_t)B * C * l->Ho * l->Wo;
            float *upx = sbuf(nu), *dupx = sbuf(nu);
            if (conv_needs_input(&b->up))
                op_upsample_nearest(upx, block_out(l, b->n - 1), B, C, l->H, l->W, l->Ho, l->Wo);
            conv_backward(&b->up, dupx, dh, upx, B, l->Ho, l->Wo);
            pool_free(dh);
            dh = sbuf((size_t)B * C * HW);
            op_upsample_nearest_backward(dh, dupx, B, C, l->H, l->W, l->Ho, l->Wo);
            pool_free(upx);
            pool_free(dupx);
        }
        for (int j = b->n - 1; j >= 0; j--) {
            const ResBlock *r = &b->resnets[j];
            if (b->attns) {
                float *d = sbuf((size_t)B * r->cout * HW);
                transformer2d_backward(&b->attns[j], &l->tr[j], d, dctx, dh, l->res_out[j], ctx, B, l->H,
                                       l->W, Tc);
                pool_free(dh);
                dh = d;
            }
            /* the resnet's input was [hprev, skip]: rebuild it, backprop, split the gradient */
            Skip s = skips[ns];
            int Cprev = r->cin - s.C;
            const float *hprev = j > 0 ? block_out(l, j - 1) : i > 0 ? level_out(&acts->up[i - 1]) : acts->mid_out[2];
            float *cat = sbuf((size_t)B * r->cin * HW), *dcat = sbuf((size_t)B * r->cin * HW);
            op_concat_channels(cat, hprev, s.x, B, Cprev, s.C, HW);
            resblock_backward(r, &l->res[j], dcat, demb, dh, cat, emb, B, l->H, l->W);
            pool_free(dh);
            dh = sbuf((size_t)B * Cprev * HW);
            dskips[ns] = sbuf((size_t)B * s.C * HW);
            op_concat_channels_backward(dh, dskips[ns], dcat, B, Cprev, s.C, HW);
            ns++;
            pool_free(cat);
            pool_free(dcat);
        }
    }
    LS_ASSERT(ns == S);

    /* mid block in reverse: dh becomes the gradient of the mid input = the last skip */
    {
        int k = S - 1, Cm = skips[k].C, Hm = skips[k].H, Wm = skips[k].W;
        float *d = sbuf((size_t)B * Cm * Hm * Wm);
        resblock_backward(&u->mid_res[1], &acts->mid_res[1], d, demb, dh, acts->mid_out[1], emb, B, Hm, Wm);
        transformer2d_backward(&u->mid_attn, &acts->mid_tr, dh, dctx, d, acts->mid_out[0], ctx, B, Hm, Wm, Tc);
        resblock_backward(&u->mid_res[0], &acts->mid_res[0], d, demb, dh, skips[k].x, emb, B, Hm, Wm);
        pool_free(dh);
        dh = d;
    }

    /* down path in reverse. Skip k = s_k feeds the block that made s_{k+1} and the up path, so its full
     * gradient is dh (from the next block) + dskips[k]; then backprop through the block that made s_k. */
    int k = S - 1;
    for (int i = n - 1; i >= 0; i--) {
        const UNetDown *d = &u->down[i];
        const UNetLevelActs *l = &acts->down[i];
        int C = d->resnets[0].cout, HW = l->H * l->W;
        if (d->has_down) {
            op_add_inplace(dh, dskips[k], (size_t)B * C * l->Ho * l->Wo);
            k--;
            float *dx = sbuf((size_t)B * C * HW);
            conv_backward(&d->down, dx, dh, skips[k].x, B, l->H, l->W);
            pool_free(dh);
            dh = dx;
        }
        for (int j = d->n - 1; j >= 0; j--) {
            const ResBlock *r = &d->resnets[j];
            op_add_inplace(dh, dskips[k], (size_t)B * C * HW);
            k--;
            if (d->attns) {
                float *dx = sbuf((size_t)B * C * HW);
                transformer2d_backward(&d->attns[j], &l->tr[j], dx, dctx, dh, l->res_out[j], ctx, B, l->H,
                                       l->W, Tc);
                pool_free(dh);
                dh = dx;
            }
            float *dx = sbuf((size_t)B * r->cin * HW);
            resblock_backward(r, &l->res[j], dx, demb, dh, skips[k].x, emb, B, l->H, l->W);
            pool_free(dh);
            dh = dx;
        }
    }
    LS_ASSERT(k == 0);
    op_add_inplace(dh, dskips[0], nh);
    conv_backward(&u->conv_in, NULL, dh, acts->x, B, H, W); /* the latent is data: no dx */
    pool_free(dh);
    for (int s = 0; s < S; s++) pool_free(dskips[s]);

    /* time embedding MLP, only when it carries trainable adapters:
     * emb_silu = silu(linear_2(silu(linear_1(sin_emb)))) */
    if (demb) {
        float *de1 = sbuf((size_t)B * temb);
        op_silu_backward(demb, demb, acts->emb, (size_t)B * temb);
        linear_backward(&u->time_2, de1, demb, acts->e1_silu, B);
        op_silu_backward(de1, de1, acts->e1, (size_t)B * temb);
        linear_backward(&u->time_1, NULL, de1, acts->sin_emb, B);
        pool_free(de1);
        pool_free(demb);
    }
}

/* ---------------- full fine-tuning ---------------- */

int unet_full_grads_alloc(UNet *u, TrainSet *ts) {
    return layers_full_grads_alloc(&u->wt, ts, "U-Net");
}

void unet_full_grads_free(UNet *u) { wt_grads_free(&u->wt); }

double unet_mse_loss(float *dout, const float *out, const float *target, size_t n) {
    return op_mse_loss(dout, out, target, NULL, 1, n);
}

double unet_mse_loss_weighted(float *dout, const float *out, const float *target, const float *w, size_t hw,
                              size_t n) {
    return op_mse_loss(dout, out, target, w, hw, n);
}
