/* blocks.c — see blocks.h. Activation buffers are allocated per call and freed before returning. */
#include "blocks.h"

#include <string.h>

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

void resblock_forward(const ResBlock *r, float *out, const float *x, const float *emb_silu, int B, int H,
                      int W) {
    int HW = H * W;
    float *a = sbuf((size_t)B * LS_MAX(r->cin, r->cout) * HW);
    float *h = sbuf((size_t)B * r->cout * HW);
    groupnorm_forward(&r->norm1, a, x, B, HW, 1); /* silu(norm1(x)) */
    conv_forward(&r->conv1, h, a, B, H, W, NULL, NULL);
    if (r->temb > 0 && emb_silu) {
        float *tp = sbuf((size_t)B * r->cout);
        linear_forward(&r->time_proj, tp, emb_silu, B); /* time_emb_proj(silu(emb)) */
        op_add_channel_bias(h, tp, B, r->cout, HW);
        pool_free(tp);
    }
    groupnorm_forward(&r->norm2, a, h, B, HW, 1); /* dropout(0) is the identity */
    conv_forward(&r->conv2, out, a, B, H, W, NULL, NULL);
    if (r->has_shortcut) {
        conv_forward(&r->shortcut, h, x, B, H, W, NULL, NULL);
        op_add_inplace(out, h, (size_t)B * r->cout * HW);
    } else {
        op_add_inplace(out, x, (size_t)B * r->cout * HW);
    }
    pool_free(a);
    pool_free(h);
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

void attn_forward(const Attn *a, float *out, const float *x, const float *ctx, int B, int T, int Tc) {
    int C = a->to_q.out;
    if (!ctx) {
        ctx = x;
        Tc = T;
    }
    float *q = sbuf((size_t)B * T * C), *k = sbuf((size_t)B * Tc * C), *v = sbuf((size_t)B * Tc * C);
    float *o = sbuf((size_t)B * T * C);
    linear_forward(&a->to_q, q, x, B * T);
    linear_forward(&a->to_k, k, ctx, B * Tc);
    linear_forward(&a->to_v, v, ctx, B * Tc);
    op_attention(o, q, k, v, B, T, Tc, a->heads, a->dim_head, 0);
    linear_forward(&a->to_out, out, o, B * T);
    pool_free(q);
    pool_free(k);
    pool_free(v);
    pool_free(o);
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

/* h (B,T,C) updated in place: h += attn1(norm1 h); h += attn2(norm2 h, ctx); h += ff(norm3 h). */
static void tblock_forward(const TBlock *b, float *h, const float *ctx, int B, int T, int Tc) {
    size_t n = (size_t)B * T * b->C;
    float *a = sbuf(n), *o = sbuf(n);
    layernorm_forward(&b->norm1, a, h, B * T);
    attn_forward(&b->attn1, o, a, NULL, B, T, 0);
    op_add_inplace(h, o, n);
    layernorm_forward(&b->norm2, a, h, B * T);
    attn_forward(&b->attn2, o, a, ctx, B, T, Tc);
    op_add_inplace(h, o, n);
    layernorm_forward(&b->norm3, a, h, B * T);
    float *ff = sbuf(n * 8), *g = sbuf(n * 4);
    linear_forward(&b->ff_in, ff, a, B * T);
    op_geglu(g, ff, B * T, 4 * b->C);
    linear_forward(&b->ff_out, o, g, B * T);
    op_add_inplace(h, o, n);
    pool_free(ff);
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

void transformer2d_forward(const Transformer2D *tr, float *out, const float *x, const float *ctx, int B,
                           int H, int W, int Tc) {
    int C = tr->C, T = H * W;
    size_t n = (size_t)B * C * T;
    float *a = sbuf(n), *h = sbuf(n);
    groupnorm_forward(&tr->norm, a, x, B, T, 0);
    /* A 1×1 conv on NCHW equals a Linear on tokens, so both SD1 and SD2 layouts run as Linear. */
    op_nchw_to_ntc(h, a, B, C, T);
    linear_forward(&tr->proj_in, a, h, B * T);
    for (int i = 0; i < tr->n_blocks; i++) tblock_forward(&tr->blocks[i], a, ctx, B, T, Tc);
    linear_forward(&tr->proj_out, h, a, B * T);
    op_ntc_to_nchw(out, h, B, C, T);
    op_add_inplace(out, x, n); /* residual */
    pool_free(a);
    pool_free(h);
}

/* ---------------- VAE mid-block attention ---------------- */

void vae_attn_build(VaeAttn *a, WeightTable *t, const char *prefix, int C, int groups) {
    char name[LS_NAME_MAX];
    ls_fmt(name, "%s.group_norm", prefix);
    norm_build(&a->norm, t, name, C, groups, 1e-6f);
    attn_build(&a->attn, t, prefix, C, C, 1, 1);
}

void vae_attn_forward(const VaeAttn *a, float *out, const float *x, int B, int H, int W) {
    int C = a->norm.C, T = H * W;
    size_t n = (size_t)B * C * T;
    float *g = sbuf(n), *tok = sbuf(n), *o = sbuf(n);
    groupnorm_forward(&a->norm, g, x, B, T, 0);
    op_nchw_to_ntc(tok, g, B, C, T);
    attn_forward(&a->attn, o, tok, NULL, B, T, 0);
    op_ntc_to_nchw(out, o, B, C, T);
    op_add_inplace(out, x, n);
    pool_free(g);
    pool_free(tok);
    pool_free(o);
}
