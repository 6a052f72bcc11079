/* blocks.c — see blocks.h. The forwards: temporaries come from the backend's pool and are given back
 * before returning; with an activations struct, what the backward reads goes there instead (acts_buf). */
#include "blocks.h"

#include <string.h>

#include "blocks_bwd.h" // defines: ResActs, AttnActs, TBlockActs, Tr2DActs, VaeAttnActs

/* ---------------- ResnetBlock2D ---------------- */

void resblock_build(ResBlock *r, WeightTable *t, const char *prefix, int cin, int cout, int temb,
                    int groups, float eps) {
    char name[LS_NAME_MAX];
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    r->temb = temb;
    ls_fmt(name, "%s.norm1", prefix);
    norm_build(&r->norm1, t, name, cin, groups, eps);
    ls_fmt(name, "%s.conv1", prefix);
    conv_build(&r->conv1, t, name, cin, cout, 3, 1, 1, 1);
    if (temb > 0) {
        ls_fmt(name, "%s.time_emb_proj", prefix);
        linear_build(&r->time_proj, t, name, temb, cout, 1);
    }
    ls_fmt(name, "%s.norm2", prefix);
    norm_build(&r->norm2, t, name, cout, groups, eps);
    ls_fmt(name, "%s.conv2", prefix);
    conv_build(&r->conv2, t, name, cout, cout, 3, 1, 1, 1);
    r->has_shortcut = cin != cout;
    if (r->has_shortcut) {
        ls_fmt(name, "%s.conv_shortcut", prefix);
        conv_build(&r->shortcut, t, name, cin, cout, 1, 1, 0, 0);
    }
}

void resblock_forward(const ResBlock *r, ResActs *acts, float *out, const float *x, const float *emb_silu, int B,
                      int H, int W) {
    int HW = H * W, G = r->norm1.groups;
    size_t nout = (size_t)B * r->cout * HW;
    ResActs none = {0}, *s = acts ? acts : &none; /* where statistics are kept: nowhere for inference */
    if (acts) {
        memset(acts, 0, sizeof *acts);
        acts->mean1 = acts_buf((size_t)B * G, &acts->bytes);
        acts->rstd1 = acts_buf((size_t)B * G, &acts->bytes);
        acts->mean2 = acts_buf((size_t)B * G, &acts->bytes);
        acts->rstd2 = acts_buf((size_t)B * G, &acts->bytes);
        acts->h = acts_buf(nout, &acts->bytes);
    }
    float *a = sbuf((size_t)B * LS_MAX(r->cin, r->cout) * HW);
    float *h = acts ? acts->h : sbuf(nout);
    groupnorm_forward(&r->norm1, a, s->mean1, s->rstd1, x, B, HW, 1); /* silu(norm1(x)) */
    conv_forward(&r->conv1, h, a, B, H, W, NULL, NULL);
    if (r->temb > 0 && emb_silu) {
        float *tp = sbuf((size_t)B * r->cout);
        linear_forward(&r->time_proj, tp, emb_silu, B); /* time_emb_proj(silu(emb)) */
        op_add_channel_bias(h, tp, B, r->cout, HW);
        pool_free(tp);
    }
    groupnorm_forward(&r->norm2, a, s->mean2, s->rstd2, h, B, HW, 1); /* dropout(0) is the identity */
    conv_forward(&r->conv2, out, a, B, H, W, NULL, NULL);
    if (r->has_shortcut) { /* a is free again: the shortcut's output goes there */
        conv_forward(&r->shortcut, a, x, B, H, W, NULL, NULL);
        op_add_inplace(out, a, nout);
    } else {
        op_add_inplace(out, x, nout);
    }
    pool_free(a);
    if (!acts) pool_free(h);
}

/* ---------------- Attention ---------------- */

void attn_build(Attn *a, WeightTable *t, const char *prefix, int C, int Cc, int heads, int qkv_bias) {
    char name[LS_NAME_MAX];
    a->heads = heads;
    a->dim_head = C / heads;
    LS_ASSERT(a->dim_head * heads == C);
    ls_fmt(name, "%s.to_q", prefix);
    linear_build(&a->to_q, t, name, C, C, qkv_bias);
    ls_fmt(name, "%s.to_k", prefix);
    linear_build(&a->to_k, t, name, Cc, C, qkv_bias);
    ls_fmt(name, "%s.to_v", prefix);
    linear_build(&a->to_v, t, name, Cc, C, qkv_bias);
    ls_fmt(name, "%s.to_out.0", prefix);
    linear_build(&a->to_out, t, name, C, C, 1);
}

void attn_forward(const Attn *a, AttnActs *acts, float *out, const float *x, const float *ctx, int B, int T,
                  int Tc) {
    int C = a->to_q.out;
    if (!ctx) {
        ctx = x;
        Tc = T;
    }
    size_t nq = (size_t)B * T * C, nk = (size_t)B * Tc * C;
    float *q, *k, *v, *o;
    if (acts) { /* q, k, v, and to_out's input only when to_out's backward reads it */
        memset(acts, 0, sizeof *acts);
        q = acts->q = acts_buf(nq, &acts->bytes);
        k = acts->k = acts_buf(nk, &acts->bytes);
        v = acts->v = acts_buf(nk, &acts->bytes);
        o = linear_needs_input(&a->to_out) ? (acts->o = acts_buf(nq, &acts->bytes)) : sbuf(nq);
    } else {
        q = sbuf(nq), k = sbuf(nk), v = sbuf(nk), o = sbuf(nq);
    }
    linear_forward(&a->to_q, q, x, B * T);
    linear_forward(&a->to_k, k, ctx, B * Tc);
    linear_forward(&a->to_v, v, ctx, B * Tc);
    op_attention(o, q, k, v, B, T, Tc, a->heads, a->dim_head, 0);
    linear_forward(&a->to_out, out, o, B * T);
    if (!acts) {
        pool_free(q);
        pool_free(k);
        pool_free(v);
    }
    if (!acts || !acts->o) pool_free(o);
}

/* ---------------- BasicTransformerBlock / Transformer2DModel ---------------- */

static void tblock_build(TBlock *b, WeightTable *t, const char *prefix, int C, int Cc, int heads) {
    char name[LS_NAME_MAX];
    b->C = C;
    ls_fmt(name, "%s.norm1", prefix);
    norm_build(&b->norm1, t, name, C, 0, 1e-5f);
    ls_fmt(name, "%s.attn1", prefix);
    attn_build(&b->attn1, t, name, C, C, heads, 0);
    ls_fmt(name, "%s.norm2", prefix);
    norm_build(&b->norm2, t, name, C, 0, 1e-5f);
    ls_fmt(name, "%s.attn2", prefix);
    attn_build(&b->attn2, t, name, C, Cc, heads, 0);
    ls_fmt(name, "%s.norm3", prefix);
    norm_build(&b->norm3, t, name, C, 0, 1e-5f);
    ls_fmt(name, "%s.ff.net.0.proj", prefix);
    linear_build(&b->ff_in, t, name, C, 8 * C, 1);
    ls_fmt(name, "%s.ff.net.2", prefix);
    linear_build(&b->ff_out, t, name, 4 * C, C, 1);
}

/* out = x + attn1(norm1 x);  += attn2(norm2 ·, ctx);  += ff(norm3 ·)   (x, out (B,T,C); out may be x) */
static void tblock_forward(const TBlock *b, TBlockActs *acts, float *out, const float *x, const float *ctx, int B,
                           int T, int Tc) {
    int N = B * T, C = b->C;
    size_t n = (size_t)N * C;
    TBlockActs none = {0}, *s = acts ? acts : &none; /* where statistics are kept: nowhere for inference */
    if (acts) { /* the streams before norm2 and norm3, and ff_in's output */
        size_t *by = &acts->bytes;
        memset(acts, 0, sizeof *acts);
        acts->mean1 = acts_buf(N, by), acts->rstd1 = acts_buf(N, by);
        acts->mean2 = acts_buf(N, by), acts->rstd2 = acts_buf(N, by);
        acts->mean3 = acts_buf(N, by), acts->rstd3 = acts_buf(N, by);
        acts->h1 = acts_buf(n, by);
        acts->h2 = acts_buf(n, by);
        acts->ff = acts_buf(n * 8, by);
    }
    float *h1 = acts ? acts->h1 : out, *h2 = acts ? acts->h2 : out; /* inference: the stream is out */
    float *a = sbuf(n), *o = sbuf(n);
    layernorm_forward(&b->norm1, a, s->mean1, s->rstd1, x, N);
    attn_forward(&b->attn1, acts ? &acts->attn1 : NULL, o, a, NULL, B, T, 0);
    add_residual(h1, x, o, n);
    layernorm_forward(&b->norm2, a, s->mean2, s->rstd2, h1, N);
    attn_forward(&b->attn2, acts ? &acts->attn2 : NULL, o, a, ctx, B, T, Tc);
    add_residual(h2, h1, o, n);
    layernorm_forward(&b->norm3, a, s->mean3, s->rstd3, h2, N);
    float *ff = acts ? acts->ff : sbuf(n * 8), *g = sbuf(n * 4);
    linear_forward(&b->ff_in, ff, a, N);
    op_geglu(g, ff, N, 4 * C);
    linear_forward(&b->ff_out, o, g, N);
    add_residual(out, h2, o, n);
    if (acts) acts->bytes += acts->attn1.bytes + acts->attn2.bytes;
    else pool_free(ff);
    pool_free(g);
    pool_free(a);
    pool_free(o);
}

void transformer2d_build(Transformer2D *tr, WeightTable *t, const char *prefix, int C, int Cc, int heads,
                         int n_blocks, int groups, int linear_proj) {
    char name[LS_NAME_MAX];
    tr->C = C;
    tr->n_blocks = n_blocks;
    ls_fmt(name, "%s.norm", prefix);
    norm_build(&tr->norm, t, name, C, groups, 1e-6f); /* hard-coded 1e-6 in diffusers */
    ls_fmt(name, "%s.proj_in", prefix);
    if (linear_proj) linear_build(&tr->proj_in, t, name, C, C, 1);
    else linear_build_conv1x1(&tr->proj_in, t, name, C, C);
    tr->blocks = callocCheck((size_t)n_blocks, sizeof *tr->blocks);
    for (int i = 0; i < n_blocks; i++) {
        ls_fmt(name, "%s.transformer_blocks.%d", prefix, i);
        tblock_build(&tr->blocks[i], t, name, C, Cc, heads);
    }
    ls_fmt(name, "%s.proj_out", prefix);
    if (linear_proj) linear_build(&tr->proj_out, t, name, C, C, 1);
    else linear_build_conv1x1(&tr->proj_out, t, name, C, C);
}

void transformer2d_free(Transformer2D *tr) {
    free(tr->blocks);
    tr->blocks = NULL;
}

void transformer2d_forward(const Transformer2D *tr, Tr2DActs *acts, float *out, const float *x, const float *ctx,
                           int B, int H, int W, int Tc) {
    int C = tr->C, T = H * W, nb = tr->n_blocks;
    size_t n = (size_t)B * C * T;
    Tr2DActs none = {0}, *s = acts ? acts : &none; /* where statistics are kept: nowhere for inference */
    if (acts) { /* the token stream before each block and after the last */
        size_t *by = &acts->bytes;
        memset(acts, 0, sizeof *acts);
        acts->n_blocks = nb;
        acts->mean = acts_buf((size_t)B * tr->norm.groups, by);
        acts->rstd = acts_buf((size_t)B * tr->norm.groups, by);
        acts->hs = acts_array((size_t)nb + 1, sizeof *acts->hs);
        acts->blocks = acts_array((size_t)nb, sizeof *acts->blocks);
        for (int i = 0; i <= nb; i++) acts->hs[i] = acts_buf(n, by);
    }
    float *a = sbuf(n), *tok = sbuf(n);
    groupnorm_forward(&tr->norm, a, s->mean, s->rstd, x, B, T, 0);
    /* A 1×1 conv on NCHW equals a Linear on tokens, so both SD1 and SD2 layouts run as Linear. */
    op_nchw_to_ntc(tok, a, B, C, T);
    float *h = acts ? acts->hs[0] : a; /* inference: the blocks update one stream in place */
    linear_forward(&tr->proj_in, h, tok, B * T);
    for (int i = 0; i < nb; i++) {
        float *y = acts ? acts->hs[i + 1] : h;
        tblock_forward(&tr->blocks[i], acts ? &acts->blocks[i] : NULL, y, h, ctx, B, T, Tc);
        if (acts) acts->bytes += acts->blocks[i].bytes;
        h = y;
    }
    linear_forward(&tr->proj_out, tok, h, B * T);
    op_ntc_to_nchw(out, tok, B, C, T);
    op_add_inplace(out, x, n); /* residual */
    pool_free(a);
    pool_free(tok);
}

/* ---------------- VAE mid-block attention ---------------- */

void vae_attn_build(VaeAttn *a, WeightTable *t, const char *prefix, int C, int groups) {
    char name[LS_NAME_MAX];
    ls_fmt(name, "%s.group_norm", prefix);
    norm_build(&a->norm, t, name, C, groups, 1e-6f);
    attn_build(&a->attn, t, prefix, C, C, 1, 1);
}

void vae_attn_forward(const VaeAttn *a, VaeAttnActs *acts, float *out, const float *x, int B, int H, int W) {
    int C = a->norm.C, T = H * W;
    size_t n = (size_t)B * C * T;
    VaeAttnActs none = {0}, *s = acts ? acts : &none; /* where statistics are kept: nowhere for inference */
    if (acts) {
        memset(acts, 0, sizeof *acts);
        acts->mean = acts_buf((size_t)B * a->norm.groups, &acts->bytes);
        acts->rstd = acts_buf((size_t)B * a->norm.groups, &acts->bytes);
    }
    float *g = sbuf(n), *tok = sbuf(n), *o = sbuf(n);
    groupnorm_forward(&a->norm, g, s->mean, s->rstd, x, B, T, 0);
    op_nchw_to_ntc(tok, g, B, C, T);
    attn_forward(&a->attn, acts ? &acts->attn : NULL, o, tok, NULL, B, T, 0);
    if (acts) acts->bytes += acts->attn.bytes;
    op_ntc_to_nchw(out, o, B, C, T);
    op_add_inplace(out, x, n); /* residual */
    pool_free(g);
    pool_free(tok);
    pool_free(o);
}

/* ---------------- output head ---------------- */

void norm_silu_conv_forward(const Norm *n, const Conv2d *conv, float *y, float *mean, float *rstd, const float *x,
                            int B, int H, int W) {
    float *a = sbuf((size_t)B * n->C * H * W);
    groupnorm_forward(n, a, mean, rstd, x, B, H * W, 1);
    conv_forward(conv, y, a, B, H, W, NULL, NULL);
    pool_free(a);
}
