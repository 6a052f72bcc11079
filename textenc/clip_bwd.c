/* clip_bwd.c — see clip_bwd.h. clip_backward walks the forward's lines (clip.c) bottom to top. ==
 * transformers' CLIPTextModel: per layer h1 = x + out_proj(attn(ln1 x)) (causal), out = h1 +
 * fc2(act(fc1(ln2 h1))). */
#include "clip_bwd.h"

#include <string.h>

static int norm_trainable(const Norm *n) { return n->dg || n->db; }

/* Does the layer have anything to train: a trainable LoRA hook or dw (linear_needs_input), or norm
 * gradients (full fine-tuning)? */
static int layer_trainable(const ClipLayer *l) {
    return linear_needs_input(&l->q) || linear_needs_input(&l->k) || linear_needs_input(&l->v) ||
           linear_needs_input(&l->o) || linear_needs_input(&l->fc1) || linear_needs_input(&l->fc2) ||
           norm_trainable(&l->ln1) || norm_trainable(&l->ln2);
}

void clip_acts_free(ClipActs *acts) {
    if (acts->hs)
        for (int i = 0; i <= acts->n; i++) pool_free(acts->hs[i]);
    for (int i = 0; acts->layer && i < acts->n; i++) {
        ClipLayerActs *la = &acts->layer[i];
        pool_free(la->mean1), pool_free(la->rstd1), pool_free(la->q), pool_free(la->k), pool_free(la->v);
        pool_free(la->o), pool_free(la->h1), pool_free(la->mean2), pool_free(la->rstd2), pool_free(la->f);
    }
    pool_free(acts->hs);
    pool_free(acts->ids);
    pool_free(acts->layer);
    pool_free(acts->mean_f), pool_free(acts->rstd_f);
    memset(acts, 0, sizeof *acts);
}

/* ---------------- backward ---------------- */

/* dh (N,D): on entry ∂loss/∂(layer output), on return ∂loss/∂(layer input x) unless need_dx == 0 (the
 * layer is the lowest trainable one: nothing below reads it, so the input-gradient work is skipped).
 * Parameter gradients (LoRA ddown/dup, dw/db, the norms' dg/db) accumulate where the buffers exist. */
static void layer_backward(const ClipLayer *l, const ClipConfig *c, const ClipActs *acts,
                           const ClipLayerActs *la, float *dh, const float *x, int need_dx) {
    int B = acts->B, L = acts->L, N = B * L, D = c->hidden, I = c->intermediate;
    size_t n = (size_t)N * D, ni = (size_t)N * I;
    float *a = sbuf(n), *da = sbuf(n), *dn = sbuf(n);

    /* MLP: y = h1 + fc2(act(f)), f = fc1(ln2 h1). Below this sublayer the stream gradient is still
     * needed (the attention's LoRA sits there), so da/dn are always computed here. */
    float *g = sbuf(ni), *dg = sbuf(ni);
    if (linear_needs_input(&l->fc2)) {
        memcpy(g, la->f, ni * sizeof(float));
        clip_mlp_act(c, g, ni);
    }
    linear_backward(&l->fc2, dg, dh, g, N);
    if (c->quick_gelu) op_quick_gelu_backward(dg, dg, la->f, ni);
    else op_gelu_backward(dg, dg, la->f, ni);
    if (linear_needs_input(&l->fc1)) layernorm_forward(&l->ln2, a, NULL, NULL, la->h1, N);
    linear_backward(&l->fc1, da, dg, a, N);
    layernorm_backward(&l->ln2, dn, da, la->mean2, la->rstd2, la->h1, N);
    op_add_inplace(dh, dn, n); /* dh = ∂loss/∂h1 */
    pool_free(g);
    pool_free(dg);

    /* self-attention: h1 = x + out_proj(attn(q, k, v)), q/k/v = proj(ln1 x) */
    float *datt = sbuf(n), *dq = sbuf(n), *dk = sbuf(n), *dv = sbuf(n);
    linear_backward(&l->o, datt, dh, la->o, N);
    op_attention_backward(dq, dk, dv, datt, la->q, la->k, la->v, B, L, L, c->heads, D / c->heads, 1);
    if (linear_needs_input(&l->q) || linear_needs_input(&l->k) || linear_needs_input(&l->v))
        layernorm_forward(&l->ln1, a, NULL, NULL, x, N);
    /* q, k and v all read ln1 x: their input gradients add up in da (needed for dx or ln1's dg/db) */
    int need_da = need_dx || norm_trainable(&l->ln1);
    float *tmp = need_da ? dn : NULL;
    linear_backward(&l->q, need_da ? da : NULL, dq, a, N);
    linear_backward(&l->k, tmp, dk, a, N);
    if (need_da) op_add_inplace(da, tmp, n);
    linear_backward(&l->v, tmp, dv, a, N);
    if (need_da) {
        op_add_inplace(da, tmp, n);
        layernorm_backward(&l->ln1, need_dx ? dn : NULL, da, la->mean1, la->rstd1, x, N);
        if (need_dx) op_add_inplace(dh, dn, n); /* dh = ∂loss/∂x */
    }
    pool_free(datt), pool_free(dq), pool_free(dk), pool_free(dv);
    pool_free(a), pool_free(da), pool_free(dn);
}

/* hs[0] = tok_emb[ids] + pos_emb[position], dh (N,D) = ∂loss/∂hs[0]: the token embedding's rows of the
 * ids that occur get their rows of dh added (scatter-add, in row order), the position embedding's row i
 * the sum over the batch of position i. */
static void embeddings_backward(const Clip *m, const ClipActs *acts, const float *dh) {
    int B = acts->B, L = acts->L, D = m->cfg.hidden;
    for (int r = 0; m->dtok_emb && r < B * L; r++) {
        float *dst = m->dtok_emb + (size_t)acts->ids[r] * D;
        const float *src = dh + (size_t)r * D;
        for (int d = 0; d < D; d++) dst[d] += src[d];
    }
    for (int b = 0; m->dpos_emb && b < B; b++)
        for (int i = 0; i < L; i++) {
            float *dst = m->dpos_emb + (size_t)i * D;
            const float *src = dh + ((size_t)b * L + i) * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
        }
}

void clip_backward(const Clip *m, const ClipActs *acts, const float *dout) {
    const ClipConfig *c = &m->cfg;
    int N = acts->B * acts->L, D = c->hidden, n = acts->n;
    /* the lowest layer whose backward runs: −1 = all of them and the embeddings (they need ∂loss/∂hs[0]);
     * n = none (at most final_layer_norm's own gradients) */
    int lowest = n;
    if (m->dtok_emb || m->dpos_emb) lowest = -1;
    else
        for (int li = n - 1; li >= 0; li--)
            if (layer_trainable(&m->layer[li])) lowest = li;
    if (lowest == n && !norm_trainable(&m->final_ln)) return; /* nothing trainable on what ran */
    float *dh = lowest < n ? sbuf((size_t)N * D) : NULL;
    /* out = final_layer_norm(hs[n]) */
    layernorm_backward(&m->final_ln, dh, dout, acts->mean_f, acts->rstd_f, acts->hs[n], N);
    for (int li = n - 1; li >= 0 && li >= lowest; li--)
        layer_backward(&m->layer[li], c, acts, &acts->layer[li], dh, acts->hs[li], li > lowest);
    if (lowest < 0) embeddings_backward(m, acts, dh);
    pool_free(dh);
}

/* ---------------- full fine-tuning ---------------- */

int clip_full_grads_alloc(Clip *m, TrainSet *ts) { return layers_full_grads_alloc(&m->wt, ts, "text-encoder"); }

void clip_full_grads_free(Clip *m) { wt_grads_free(&m->wt); }

/* ---------------- captions ---------------- */

int clip_encode_train(const Clip *m, const Tokenizer *tok, ClipActs *acts, float *ctx,
                      const char *const *texts, int B, int clip_skip) {
    int L = tokenizer_max_length(tok);
    int *ids = pool_alloc((size_t)B * L * sizeof(int));
    for (int b = 0; b < B; b++) {
        int dropped = 0;
        if (tokenizer_encode(tok, texts[b], ids + (size_t)b * L, L, &dropped) < 0) {
            pool_free(ids);
            clip_acts_free(acts);
            return ls_error_context("caption");
        }
        if (dropped > 0) /* as pipeline_encode_prompt */
            ls_warn("caption is longer than %d tokens; %d token%s at the end were ignored", L - 2, dropped,
                    dropped == 1 ? "" : "s");
    }
    int rc = clip_forward_train(m, acts, ctx, ids, B, L, clip_skip - 1);
    pool_free(ids);
    return rc;
}
