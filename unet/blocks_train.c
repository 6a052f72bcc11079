/* blocks_train.c — see blocks_train.h. Each *_forward_train follows its inference twin in blocks.c line by
 * line, saving what the backward reads; each *_backward walks the same lines bottom to top. Scratch is
 * allocated per call and freed before returning; saved buffers live until *_acts_free. */
#include "blocks_train.h"

#include <string.h>

/* A saved buffer of n floats; its size is added to *bytes. */
static float *save_buf(size_t n, size_t *bytes) {
    *bytes += n * sizeof(float);
    return fbuf(n);
}

/* Recompute a norm's output from its saved input, exactly as the training forward computed it (the same
 * op with throwaway statistics). */
static void groupnorm_recompute(const Norm *n, float *y, const float *x, int B, int HW, int silu) {
    float *mean = fbuf((size_t)B * n->groups), *rstd = fbuf((size_t)B * n->groups);
    op_groupnorm_fwd_stats(y, mean, rstd, x, n->g, n->b, B, n->C, HW, n->groups, n->eps, silu);
    free(mean);
    free(rstd);
}

static void layernorm_recompute(const Norm *n, float *y, const float *x, int N) {
    float *mean = fbuf((size_t)N), *rstd = fbuf((size_t)N);
    op_layernorm_fwd_stats(y, mean, rstd, x, n->g, n->b, N, n->C, n->eps);
    free(mean);
    free(rstd);
}

/* Backward of a GroupNorm (+ silu): dx (B,C,HW) from dy, its input x and saved statistics; the norm's
 * dg/db += when it has them (full fine-tuning), else it is frozen and they are skipped. */
static void groupnorm_backward(const Norm *n, float *dx, const float *dy, const float *mean,
                               const float *rstd, const float *x, int B, int HW, int silu) {
    op_groupnorm_backward(dx, n->dg, n->db, dy, mean, rstd, x, n->g, n->b, B, n->C, HW, n->groups, n->eps,
                          silu);
}

/* LayerNorm backward on x (N,C), the same way. */
static void layernorm_backward(const Norm *n, float *dx, const float *dy, const float *mean,
                               const float *rstd, const float *x, int N) {
    op_layernorm_backward(dx, n->dg, n->db, dy, mean, rstd, x, n->g, N, n->C, n->eps);
}

/* ---------------- ResnetBlock2D ---------------- */

void resblock_forward_train(const ResBlock *r, ResActs *acts, float *out, const float *x,
                            const float *emb_silu, int B, int H, int W) {
    int HW = H * W, G = r->norm1.groups;
    memset(acts, 0, sizeof *acts);
    size_t *by = &acts->bytes;
    acts->mean1 = save_buf((size_t)B * G, by);
    acts->rstd1 = save_buf((size_t)B * G, by);
    acts->mean2 = save_buf((size_t)B * G, by);
    acts->rstd2 = save_buf((size_t)B * G, by);
    acts->h = save_buf((size_t)B * r->cout * HW, by);
    float *a = fbuf((size_t)B * LS_MAX(r->cin, r->cout) * HW);
    op_groupnorm_fwd_stats(a, acts->mean1, acts->rstd1, x, r->norm1.g, r->norm1.b, B, r->cin, HW, G,
                           r->norm1.eps, 1); /* silu(norm1(x)) */
    conv_forward(&r->conv1, acts->h, a, B, H, W, NULL, NULL);
    if (r->temb > 0 && emb_silu) {
        float *tp = fbuf((size_t)B * r->cout);
        linear_forward(&r->time_proj, tp, emb_silu, B); /* time_emb_proj(silu(emb)) */
        op_add_channel_bias(acts->h, tp, B, r->cout, HW);
        free(tp);
    }
    op_groupnorm_fwd_stats(a, acts->mean2, acts->rstd2, acts->h, r->norm2.g, r->norm2.b, B, r->cout, HW, G,
                           r->norm2.eps, 1);
    conv_forward(&r->conv2, out, a, B, H, W, NULL, NULL);
    if (r->has_shortcut) {
        float *s = fbuf((size_t)B * r->cout * HW);
        conv_forward(&r->shortcut, s, x, B, H, W, NULL, NULL);
        op_add_inplace(out, s, (size_t)B * r->cout * HW);
        free(s);
    } else {
        op_add_inplace(out, x, (size_t)B * r->cout * HW);
    }
    free(a);
}

void norm_silu_conv_backward(const Norm *n, const Conv2d *conv, float *dx, const float *dy, const float *x,
                             const float *mean, const float *rstd, int B, int C, int H, int W) {
    size_t sz = (size_t)B * C * H * W;
    float *t = fbuf(sz), *dt = fbuf(sz);
    if (conv_needs_input(conv)) { /* recompute the conv's input */
        float *m = fbuf((size_t)B * n->groups), *r = fbuf((size_t)B * n->groups);
        op_groupnorm_fwd_stats(t, m, r, x, n->g, n->b, B, C, H * W, n->groups, n->eps, 1);
        free(m);
        free(r);
    }
    conv_backward(conv, dt, dy, t, B, H, W);
    op_groupnorm_backward(dx, n->dg, n->db, dt, mean, rstd, x, n->g, n->b, B, C, H * W, n->groups, n->eps, 1);
    free(t);
    free(dt);
}

void resblock_backward(const ResBlock *r, const ResActs *acts, float *dx, float *demb_silu, const float *dy,
                       const float *x, const float *emb_silu, int B, int H, int W) {
    int HW = H * W;
    size_t nin = (size_t)B * r->cin * HW, nout = (size_t)B * r->cout * HW;
    float *a = fbuf((size_t)B * LS_MAX(r->cin, r->cout) * HW); /* a recomputed norm output */
    float *da = fbuf(LS_MAX(nin, nout));
    float *dh = fbuf(nout);

    /* out = conv2(silu(norm2 h)) + shortcut(x) */
    if (conv_needs_input(&r->conv2)) groupnorm_recompute(&r->norm2, a, acts->h, B, HW, 1);
    conv_backward(&r->conv2, da, dy, a, B, H, W);
    groupnorm_backward(&r->norm2, dh, da, acts->mean2, acts->rstd2, acts->h, B, HW, 1);

    /* h = conv1(silu(norm1 x)) + time_emb_proj(emb_silu) broadcast over HW */
    if (r->temb > 0 && emb_silu && (demb_silu || linear_needs_input(&r->time_proj))) {
        float *dtp = callocCheck((size_t)B * r->cout, sizeof(float));
        float *de = demb_silu ? fbuf((size_t)B * r->temb) : NULL;
        op_add_channel_bias_backward(dtp, dh, B, r->cout, HW); /* dtp (B,cout) = Σ_hw dh */
        linear_backward(&r->time_proj, de, dtp, emb_silu, B);
        if (de) op_add_inplace(demb_silu, de, (size_t)B * r->temb);
        free(dtp);
        free(de);
    }
    if (conv_needs_input(&r->conv1)) groupnorm_recompute(&r->norm1, a, x, B, HW, 1);
    conv_backward(&r->conv1, da, dh, a, B, H, W); /* da (B,cin,HW) */
    groupnorm_backward(&r->norm1, dx, da, acts->mean1, acts->rstd1, x, B, HW, 1);

    /* the skip path adds its gradient */
    if (r->has_shortcut) {
        conv_backward(&r->shortcut, da, dy, x, B, H, W);
        op_add_inplace(dx, da, nin);
    } else {
        op_add_inplace(dx, dy, nin);
    }
    free(a);
    free(da);
    free(dh);
}

void resblock_acts_free(ResActs *acts) {
    free(acts->mean1);
    free(acts->rstd1);
    free(acts->mean2);
    free(acts->rstd2);
    free(acts->h);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- Attention ---------------- */

int attn_needs_x(const Attn *a, int self) {
    return linear_needs_input(&a->to_q) ||
           (self && (linear_needs_input(&a->to_k) || linear_needs_input(&a->to_v)));
}

void attn_forward_train(const Attn *a, AttnActs *acts, float *out, const float *x, const float *ctx, int B,
                        int T, int Tc) {
    int C = a->to_q.out;
    if (!ctx) {
        ctx = x;
        Tc = T;
    }
    memset(acts, 0, sizeof *acts);
    acts->q = save_buf((size_t)B * T * C, &acts->bytes);
    acts->k = save_buf((size_t)B * Tc * C, &acts->bytes);
    acts->v = save_buf((size_t)B * Tc * C, &acts->bytes);
    int keep_o = linear_needs_input(&a->to_out);
    float *o = keep_o ? save_buf((size_t)B * T * C, &acts->bytes) : fbuf((size_t)B * T * C);
    linear_forward(&a->to_q, acts->q, x, B * T);
    linear_forward(&a->to_k, acts->k, ctx, B * Tc);
    linear_forward(&a->to_v, acts->v, ctx, B * Tc);
    op_attention(o, acts->q, acts->k, acts->v, B, T, Tc, a->heads, a->dim_head, 0);
    linear_forward(&a->to_out, out, o, B * T);
    if (keep_o) acts->o = o;
    else free(o);
}

void attn_backward(const Attn *a, const AttnActs *acts, float *dx, float *dctx, const float *dy,
                   const float *x, const float *ctx, int B, int T, int Tc) {
    int C = a->to_q.out, self = ctx == NULL;
    if (self) {
        ctx = x;
        Tc = T;
    }
    size_t nq = (size_t)B * T * C, nk = (size_t)B * Tc * C;
    float *dout = fbuf(nq), *dq = fbuf(nq), *dk = fbuf(nk), *dv = fbuf(nk);
    linear_backward(&a->to_out, dout, dy, acts->o, B * T);
    op_attention_backward(dq, dk, dv, dout, acts->q, acts->k, acts->v, B, T, Tc, a->heads, a->dim_head, 0);
    linear_backward(&a->to_q, dx, dq, x, B * T);
    /* k and v read ctx (x itself for self-attention): their input gradients add up there */
    float *acc = self ? dx : dctx;
    size_t nin = (size_t)B * Tc * a->to_k.in;
    float *tmp = acc ? fbuf(nin) : NULL;
    linear_backward(&a->to_k, tmp, dk, ctx, B * Tc);
    if (acc) op_add_inplace(acc, tmp, nin);
    linear_backward(&a->to_v, tmp, dv, ctx, B * Tc);
    if (acc) op_add_inplace(acc, tmp, nin);
    free(tmp);
    free(dout);
    free(dq);
    free(dk);
    free(dv);
}

void attn_acts_free(AttnActs *acts) {
    free(acts->q);
    free(acts->k);
    free(acts->v);
    free(acts->o);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- BasicTransformerBlock ---------------- */

/* out = x + attn1(norm1 x);  += attn2(norm2 ·, ctx);  += ff(norm3 ·)   (x, out (B,T,C), out != x) */
static void tblock_forward_train(const TBlock *b, TBlockActs *acts, float *out, const float *x,
                                 const float *ctx, int B, int T, int Tc) {
    int N = B * T, C = b->C;
    size_t n = (size_t)N * C, *by = &acts->bytes;
    memset(acts, 0, sizeof *acts);
    acts->mean1 = save_buf(N, by), acts->rstd1 = save_buf(N, by);
    acts->mean2 = save_buf(N, by), acts->rstd2 = save_buf(N, by);
    acts->mean3 = save_buf(N, by), acts->rstd3 = save_buf(N, by);
    acts->h1 = save_buf(n, by);
    acts->h2 = save_buf(n, by);
    acts->ff = save_buf(n * 8, by);
    float *a = fbuf(n), *o = fbuf(n), *g = fbuf(n * 4);

    op_layernorm_fwd_stats(a, acts->mean1, acts->rstd1, x, b->norm1.g, b->norm1.b, N, C, b->norm1.eps);
    attn_forward_train(&b->attn1, &acts->attn1, o, a, NULL, B, T, 0);
    for (size_t i = 0; i < n; i++) acts->h1[i] = x[i] + o[i];

    op_layernorm_fwd_stats(a, acts->mean2, acts->rstd2, acts->h1, b->norm2.g, b->norm2.b, N, C, b->norm2.eps);
    attn_forward_train(&b->attn2, &acts->attn2, o, a, ctx, B, T, Tc);
    for (size_t i = 0; i < n; i++) acts->h2[i] = acts->h1[i] + o[i];

    op_layernorm_fwd_stats(a, acts->mean3, acts->rstd3, acts->h2, b->norm3.g, b->norm3.b, N, C, b->norm3.eps);
    linear_forward(&b->ff_in, acts->ff, a, N);
    op_geglu(g, acts->ff, N, 4 * C);
    linear_forward(&b->ff_out, out, g, N);
    op_add_inplace(out, acts->h2, n);
    acts->bytes += acts->attn1.bytes + acts->attn2.bytes;
    free(a);
    free(o);
    free(g);
}

/* dh (B,T,C): on entry the gradient w.r.t. the block output, on return w.r.t. its input x (in place: the
 * residual stream's gradient passes through and each sublayer adds its branch). dctx += (or NULL). */
static void tblock_backward(const TBlock *b, const TBlockActs *acts, float *dh, float *dctx, const float *x,
                            const float *ctx, int B, int T, int Tc) {
    int N = B * T, C = b->C;
    size_t n = (size_t)N * C;
    float *a = fbuf(n), *da = fbuf(n), *dn = fbuf(n);

    /* feed-forward: out = h2 + ff_out(geglu(ff_in(norm3 h2))) */
    float *g = fbuf(n * 4), *dg = fbuf(n * 4), *dff = fbuf(n * 8);
    if (linear_needs_input(&b->ff_out)) op_geglu(g, acts->ff, N, 4 * C);
    linear_backward(&b->ff_out, dg, dh, g, N);
    op_geglu_backward(dff, dg, acts->ff, N, 4 * C);
    if (linear_needs_input(&b->ff_in)) layernorm_recompute(&b->norm3, a, acts->h2, N);
    linear_backward(&b->ff_in, da, dff, a, N);
    layernorm_backward(&b->norm3, dn, da, acts->mean3, acts->rstd3, acts->h2, N);
    op_add_inplace(dh, dn, n);
    free(g);
    free(dg);
    free(dff);

    /* cross-attention: h2 = h1 + attn2(norm2 h1, ctx) */
    if (attn_needs_x(&b->attn2, 0)) layernorm_recompute(&b->norm2, a, acts->h1, N);
    attn_backward(&b->attn2, &acts->attn2, da, dctx, dh, a, ctx, B, T, Tc);
    layernorm_backward(&b->norm2, dn, da, acts->mean2, acts->rstd2, acts->h1, N);
    op_add_inplace(dh, dn, n);

    /* self-attention: h1 = x + attn1(norm1 x) */
    if (attn_needs_x(&b->attn1, 1)) layernorm_recompute(&b->norm1, a, x, N);
    attn_backward(&b->attn1, &acts->attn1, da, NULL, dh, a, NULL, B, T, 0);
    layernorm_backward(&b->norm1, dn, da, acts->mean1, acts->rstd1, x, N);
    op_add_inplace(dh, dn, n);
    free(a);
    free(da);
    free(dn);
}

static void tblock_acts_free(TBlockActs *acts) {
    free(acts->mean1), free(acts->rstd1);
    free(acts->mean2), free(acts->rstd2);
    free(acts->mean3), free(acts->rstd3);
    free(acts->h1), free(acts->h2), free(acts->ff);
    attn_acts_free(&acts->attn1);
    attn_acts_free(&acts->attn2);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- Transformer2DModel ---------------- */

void transformer2d_forward_train(const Transformer2D *tr, Tr2DActs *acts, float *out, const float *x,
                                 const float *ctx, int B, int H, int W, int Tc) {
    int C = tr->C, T = H * W, nb = tr->n_blocks;
    size_t n = (size_t)B * C * T, *by = &acts->bytes;
    memset(acts, 0, sizeof *acts);
    acts->n_blocks = nb;
    acts->mean = save_buf((size_t)B * tr->norm.groups, by);
    acts->rstd = save_buf((size_t)B * tr->norm.groups, by);
    acts->hs = callocCheck((size_t)nb + 1, sizeof *acts->hs);
    acts->blocks = callocCheck((size_t)nb, sizeof *acts->blocks);
    for (int i = 0; i <= nb; i++) acts->hs[i] = save_buf(n, by);

    float *a = fbuf(n), *tok = fbuf(n);
    op_groupnorm_fwd_stats(a, acts->mean, acts->rstd, x, tr->norm.g, tr->norm.b, B, C, T, tr->norm.groups,
                           tr->norm.eps, 0);
    op_nchw_to_ntc(tok, a, B, C, T);
    linear_forward(&tr->proj_in, acts->hs[0], tok, B * T);
    for (int i = 0; i < nb; i++) {
        tblock_forward_train(&tr->blocks[i], &acts->blocks[i], acts->hs[i + 1], acts->hs[i], ctx, B, T, Tc);
        acts->bytes += acts->blocks[i].bytes;
    }
    linear_forward(&tr->proj_out, tok, acts->hs[nb], B * T);
    op_ntc_to_nchw(out, tok, B, C, T);
    op_add_inplace(out, x, n); /* residual */
    free(a);
    free(tok);
}

void transformer2d_backward(const Transformer2D *tr, const Tr2DActs *acts, float *dx, float *dctx,
                            const float *dy, const float *x, const float *ctx, int B, int H, int W, int Tc) {
    int C = tr->C, T = H * W, nb = tr->n_blocks;
    size_t n = (size_t)B * C * T;
    float *dtok = fbuf(n), *dh = fbuf(n), *a = fbuf(n), *tok = fbuf(n);

    /* out = nchw(proj_out(hs[nb])) + x */
    op_ntc_to_nchw_backward(dtok, dy, B, C, T);
    linear_backward(&tr->proj_out, dh, dtok, acts->hs[nb], B * T);
    for (int i = nb - 1; i >= 0; i--)
        tblock_backward(&tr->blocks[i], &acts->blocks[i], dh, dctx, acts->hs[i], ctx, B, T, Tc);

    /* hs[0] = proj_in(ntc(norm x)) */
    if (linear_needs_input(&tr->proj_in)) {
        groupnorm_recompute(&tr->norm, a, x, B, T, 0);
        op_nchw_to_ntc(tok, a, B, C, T);
    }
    linear_backward(&tr->proj_in, dtok, dh, tok, B * T);
    op_nchw_to_ntc_backward(a, dtok, B, C, T);
    groupnorm_backward(&tr->norm, dx, a, acts->mean, acts->rstd, x, B, T, 0);
    op_add_inplace(dx, dy, n); /* residual */
    free(dtok);
    free(dh);
    free(a);
    free(tok);
}

void transformer2d_acts_free(Tr2DActs *acts) {
    if (acts->hs)
        for (int i = 0; i <= acts->n_blocks; i++) free(acts->hs[i]);
    if (acts->blocks)
        for (int i = 0; i < acts->n_blocks; i++) tblock_acts_free(&acts->blocks[i]);
    free(acts->hs);
    free(acts->blocks);
    free(acts->mean);
    free(acts->rstd);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- VAE mid-block attention ---------------- */

void vae_attn_forward_train(const VaeAttn *a, VaeAttnActs *acts, float *out, const float *x, int B, int H,
                            int W) {
    const Norm *nm = &a->norm;
    int C = nm->C, T = H * W;
    size_t n = (size_t)B * C * T;
    memset(acts, 0, sizeof *acts);
    acts->mean = save_buf((size_t)B * nm->groups, &acts->bytes);
    acts->rstd = save_buf((size_t)B * nm->groups, &acts->bytes);
    float *g = fbuf(n), *tok = fbuf(n), *o = fbuf(n);
    op_groupnorm_fwd_stats(g, acts->mean, acts->rstd, x, nm->g, nm->b, B, C, T, nm->groups, nm->eps, 0);
    op_nchw_to_ntc(tok, g, B, C, T);
    attn_forward_train(&a->attn, &acts->attn, o, tok, NULL, B, T, 0);
    acts->bytes += acts->attn.bytes;
    op_ntc_to_nchw(out, o, B, C, T);
    op_add_inplace(out, x, n); /* residual */
    free(g);
    free(tok);
    free(o);
}

void vae_attn_backward(const VaeAttn *a, const VaeAttnActs *acts, float *dx, const float *dy, const float *x,
                       int B, int H, int W) {
    int C = a->norm.C, T = H * W;
    size_t n = (size_t)B * C * T;
    float *g = fbuf(n), *tok = fbuf(n), *dtok = fbuf(n), *dout = fbuf(n);
    /* out = nchw(attn(tok)) + x, tok = ntc(GN x) */
    op_ntc_to_nchw_backward(dout, dy, B, C, T);
    if (attn_needs_x(&a->attn, 1)) { /* recompute the attention's input */
        groupnorm_recompute(&a->norm, g, x, B, T, 0);
        op_nchw_to_ntc(tok, g, B, C, T);
    }
    attn_backward(&a->attn, &acts->attn, dtok, NULL, dout, tok, NULL, B, T, 0);
    op_nchw_to_ntc_backward(g, dtok, B, C, T);
    groupnorm_backward(&a->norm, dx, g, acts->mean, acts->rstd, x, B, T, 0);
    op_add_inplace(dx, dy, n); /* residual */
    free(g);
    free(tok);
    free(dtok);
    free(dout);
}

void vae_attn_acts_free(VaeAttnActs *acts) {
    free(acts->mean);
    free(acts->rstd);
    attn_acts_free(&acts->attn);
    memset(acts, 0, sizeof *acts);
}
