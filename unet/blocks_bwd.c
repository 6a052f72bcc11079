/* blocks_bwd.c — see blocks_bwd.h. Each *_backward walks its forward (blocks.c) bottom to top. Scratch comes
 * from the backend's pool and is given back before returning; saved buffers (pool memory too) live until
 * *_acts_free. */
#include "blocks_bwd.h"

#include <string.h>

/* ---------------- ResnetBlock2D ---------------- */

void resblock_backward(const ResBlock *r, const ResActs *acts, float *dx, float *demb_silu, const float *dy,
                       const float *x, const float *emb_silu, int B, int H, int W) {
    int HW = H * W;
    size_t nin = (size_t)B * r->cin * HW, nout = (size_t)B * r->cout * HW;
    float *a = sbuf((size_t)B * LS_MAX(r->cin, r->cout) * HW); /* a recomputed norm output */
    float *da = sbuf(LS_MAX(nin, nout));
    float *dh = sbuf(nout);

    /* out = conv2(silu(norm2 h)) + shortcut(x) */
    if (conv_needs_input(&r->conv2)) groupnorm_forward(&r->norm2, a, NULL, NULL, acts->h, B, HW, 1);
    conv_backward(&r->conv2, da, dy, a, B, H, W);
    groupnorm_backward(&r->norm2, dh, da, acts->mean2, acts->rstd2, acts->h, B, HW, 1);

    /* h = conv1(silu(norm1 x)) + time_emb_proj(emb_silu) broadcast over HW */
    if (r->temb > 0 && emb_silu && (demb_silu || linear_needs_input(&r->time_proj))) {
        float *dtp = sbuf((size_t)B * r->cout);
        memset(dtp, 0, (size_t)B * r->cout * sizeof(float)); /* the bias backward accumulates */
        float *de = demb_silu ? sbuf((size_t)B * r->temb) : NULL;
        op_add_channel_bias_backward(dtp, dh, B, r->cout, HW); /* dtp (B,cout) = Σ_hw dh */
        linear_backward(&r->time_proj, de, dtp, emb_silu, B);
        if (de) op_add_inplace(demb_silu, de, (size_t)B * r->temb);
        pool_free(dtp);
        pool_free(de);
    }
    if (conv_needs_input(&r->conv1)) groupnorm_forward(&r->norm1, a, NULL, NULL, x, B, HW, 1);
    conv_backward(&r->conv1, da, dh, a, B, H, W); /* da (B,cin,HW) */
    groupnorm_backward(&r->norm1, dx, da, acts->mean1, acts->rstd1, x, B, HW, 1);

    /* the skip path adds its gradient */
    if (r->has_shortcut) {
        conv_backward(&r->shortcut, da, dy, x, B, H, W);
        op_add_inplace(dx, da, nin);
    } else {
        op_add_inplace(dx, dy, nin);
    }
    pool_free(a);
    pool_free(da);
    pool_free(dh);
}

void resblock_acts_free(ResActs *acts) {
    pool_free(acts->mean1);
    pool_free(acts->rstd1);
    pool_free(acts->mean2);
    pool_free(acts->rstd2);
    pool_free(acts->h);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- Attention ---------------- */

int attn_needs_x(const Attn *a, int self) {
    return linear_needs_input(&a->to_q) ||
           (self && (linear_needs_input(&a->to_k) || linear_needs_input(&a->to_v)));
}

void attn_backward(const Attn *a, const AttnActs *acts, float *dx, float *dctx, const float *dy,
                   const float *x, const float *ctx, int B, int T, int Tc) {
    int C = a->to_q.out, self = ctx == NULL;
    if (self) {
        ctx = x;
        Tc = T;
    }
    size_t nq = (size_t)B * T * C, nk = (size_t)B * Tc * C;
    float *dout = sbuf(nq), *dq = sbuf(nq), *dk = sbuf(nk), *dv = sbuf(nk);
    linear_backward(&a->to_out, dout, dy, acts->o, B * T);
    op_attention_backward(dq, dk, dv, dout, acts->q, acts->k, acts->v, B, T, Tc, a->heads, a->dim_head, 0);
    linear_backward(&a->to_q, dx, dq, x, B * T);
    /* k and v read ctx (x itself for self-attention): their input gradients add up there */
    float *acc = self ? dx : dctx;
    size_t nin = (size_t)B * Tc * a->to_k.in;
    float *tmp = acc ? sbuf(nin) : NULL;
    linear_backward(&a->to_k, tmp, dk, ctx, B * Tc);
    if (acc) op_add_inplace(acc, tmp, nin);
    linear_backward(&a->to_v, tmp, dv, ctx, B * Tc);
    if (acc) op_add_inplace(acc, tmp, nin);
    pool_free(tmp);
    pool_free(dout);
    pool_free(dq);
    pool_free(dk);
    pool_free(dv);
}

void attn_acts_free(AttnActs *acts) {
    pool_free(acts->q);
    pool_free(acts->k);
    pool_free(acts->v);
    pool_free(acts->o);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- BasicTransformerBlock ---------------- */

/* dh (B,T,C): on entry the gradient w.r.t. the block output, on return w.r.t. its input x (in place: the
 * residual stream's gradient passes through and each sublayer adds its branch). dctx += (or NULL). */
static void tblock_backward(const TBlock *b, const TBlockActs *acts, float *dh, float *dctx, const float *x,
                            const float *ctx, int B, int T, int Tc) {
    int N = B * T, C = b->C;
    size_t n = (size_t)N * C;
    float *a = sbuf(n), *da = sbuf(n), *dn = sbuf(n);

    /* feed-forward: out = h2 + ff_out(geglu(ff_in(norm3 h2))) */
    float *g = sbuf(n * 4), *dg = sbuf(n * 4), *dff = sbuf(n * 8);
    if (linear_needs_input(&b->ff_out)) op_geglu(g, acts->ff, N, 4 * C);
    linear_backward(&b->ff_out, dg, dh, g, N);
    op_geglu_backward(dff, dg, acts->ff, N, 4 * C);
    if (linear_needs_input(&b->ff_in)) layernorm_forward(&b->norm3, a, NULL, NULL, acts->h2, N);
    linear_backward(&b->ff_in, da, dff, a, N);
    layernorm_backward(&b->norm3, dn, da, acts->mean3, acts->rstd3, acts->h2, N);
    op_add_inplace(dh, dn, n);
    pool_free(g);
    pool_free(dg);
    pool_free(dff);

    /* cross-attention: h2 = h1 + attn2(norm2 h1, ctx) */
    if (attn_needs_x(&b->attn2, 0)) layernorm_forward(&b->norm2, a, NULL, NULL, acts->h1, N);
    attn_backward(&b->attn2, &acts->attn2, da, dctx, dh, a, ctx, B, T, Tc);
    layernorm_backward(&b->norm2, dn, da, acts->mean2, acts->rstd2, acts->h1, N);
    op_add_inplace(dh, dn, n);

    /* self-attention: h1 = x + attn1(norm1 x) */
    if (attn_needs_x(&b->attn1, 1)) layernorm_forward(&b->norm1, a, NULL, NULL, x, N);
    attn_backward(&b->attn1, &acts->attn1, da, NULL, dh, a, NULL, B, T, 0);
    layernorm_backward(&b->norm1, dn, da, acts->mean1, acts->rstd1, x, N);
    op_add_inplace(dh, dn, n);
    pool_free(a);
    pool_free(da);
    pool_free(dn);
}

static void tblock_acts_free(TBlockActs *acts) {
    pool_free(acts->mean1), pool_free(acts->rstd1);
    pool_free(acts->mean2), pool_free(acts->rstd2);
    pool_free(acts->mean3), pool_free(acts->rstd3);
    pool_free(acts->h1), pool_free(acts->h2), pool_free(acts->ff);
    attn_acts_free(&acts->attn1);
    attn_acts_free(&acts->attn2);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- Transformer2DModel ---------------- */

void transformer2d_backward(const Transformer2D *tr, const Tr2DActs *acts, float *dx, float *dctx,
                            const float *dy, const float *x, const float *ctx, int B, int H, int W, int Tc) {
    int C = tr->C, T = H * W, nb = tr->n_blocks;
    size_t n = (size_t)B * C * T;
    float *dtok = sbuf(n), *dh = sbuf(n), *a = sbuf(n), *tok = sbuf(n);

    /* out = nchw(proj_out(hs[nb])) + x */
    op_ntc_to_nchw_backward(dtok, dy, B, C, T);
    linear_backward(&tr->proj_out, dh, dtok, acts->hs[nb], B * T);
    for (int i = nb - 1; i >= 0; i--)
        tblock_backward(&tr->blocks[i], &acts->blocks[i], dh, dctx, acts->hs[i], ctx, B, T, Tc);

    /* hs[0] = proj_in(ntc(norm x)) */
    if (linear_needs_input(&tr->proj_in)) {
        groupnorm_forward(&tr->norm, a, NULL, NULL, x, B, T, 0);
        op_nchw_to_ntc(tok, a, B, C, T);
    }
    linear_backward(&tr->proj_in, dtok, dh, tok, B * T);
    op_nchw_to_ntc_backward(a, dtok, B, C, T);
    groupnorm_backward(&tr->norm, dx, a, acts->mean, acts->rstd, x, B, T, 0);
    op_add_inplace(dx, dy, n); /* residual */
    pool_free(dtok);
    pool_free(dh);
    pool_free(a);
    pool_free(tok);
}

void transformer2d_acts_free(Tr2DActs *acts) {
    if (acts->hs)
        for (int i = 0; i <= acts->n_blocks; i++) pool_free(acts->hs[i]);
    if (acts->blocks)
        for (int i = 0; i < acts->n_blocks; i++) tblock_acts_free(&acts->blocks[i]);
    pool_free(acts->hs);
    pool_free(acts->blocks);
    pool_free(acts->mean);
    pool_free(acts->rstd);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- VAE mid-block attention ---------------- */

void vae_attn_backward(const VaeAttn *a, const VaeAttnActs *acts, float *dx, const float *dy, const float *x,
                       int B, int H, int W) {
    int C = a->norm.C, T = H * W;
    size_t n = (size_t)B * C * T;
    float *g = sbuf(n), *tok = sbuf(n), *dtok = sbuf(n), *dout = sbuf(n);
    /* out = nchw(attn(tok)) + x, tok = ntc(GN x) */
    op_ntc_to_nchw_backward(dout, dy, B, C, T);
    if (attn_needs_x(&a->attn, 1)) { /* recompute the attention's input */
        groupnorm_forward(&a->norm, g, NULL, NULL, x, B, T, 0);
        op_nchw_to_ntc(tok, g, B, C, T);
    }
    attn_backward(&a->attn, &acts->attn, dtok, NULL, dout, tok, NULL, B, T, 0);
    op_nchw_to_ntc_backward(g, dtok, B, C, T);
    groupnorm_backward(&a->norm, dx, g, acts->mean, acts->rstd, x, B, T, 0);
    op_add_inplace(dx, dy, n); /* residual */
    pool_free(g);
    pool_free(tok);
    pool_free(dtok);
    pool_free(dout);
}

void vae_attn_acts_free(VaeAttnActs *acts) {
    pool_free(acts->mean);
    pool_free(acts->rstd);
    attn_acts_free(&acts->attn);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- output head ---------------- */

void norm_silu_conv_backward(const Norm *n, const Conv2d *conv, float *dx, const float *dy, const float *x,
                             const float *mean, const float *rstd, int B, int C, int H, int W) {
    size_t sz = (size_t)B * C * H * W;
    float *t = sbuf(sz), *dt = sbuf(sz);
    if (conv_needs_input(conv)) groupnorm_forward(n, t, NULL, NULL, x, B, H * W, 1); /* the conv's input */
    conv_backward(conv, dt, dy, t, B, H, W);
    groupnorm_backward(n, dx, dt, mean, rstd, x, B, H * W, 1);
    pool_free(t);
    pool_free(dt);
}
