/* clip.c — CLIPTextModel (sd1-reference.md §2.9): config, build, and the one forward that inference runs
 * and training runs keeping its activations (clip_bwd.h). */
#include "clip.h"

#include <string.h>

#include "clip_bwd.h" // defines: ClipActs, ClipLayerActs, clip_acts_free
#include "jsonutil.h" // defines: json_parse_file, json_get_*, json_print_free

void clip_config_sd15(ClipConfig *c) {
    c->vocab_size = 49408;
    c->hidden = 768;
    c->intermediate = 3072;
    c->layers = 12;
    c->heads = 12;
    c->max_positions = 77;
    c->quick_gelu = 1;
    c->ln_eps = 1e-5f;
    c->bos_id = 0; /* legacy values of the SD1.5 file; the tokenizer's ids are what count */
    c->eos_id = 2;
    c->pad_id = 1;
}

void clip_config_tiny(ClipConfig *c) {
    clip_config_sd15(c);
    c->vocab_size = 1000;
    c->hidden = 32;
    c->intermediate = 64;
    c->layers = 3;
    c->heads = 4;
    c->bos_id = 998;
    c->eos_id = 999;
    c->pad_id = 999;
}

/* Ranges for config.json values: far beyond any CLIP text model (SD1.5: 49408 tokens, width 768, 12
 * layers, 77 positions; OpenCLIP bigG: width 1280, 32 layers), tight enough that a typo cannot ask
 * clip_build for gigabytes. Token ids must lie in the vocabulary. */
#define CLIP_MAX_VOCAB (1 << 20)
#define CLIP_MAX_WIDTH 8192
#define CLIP_MAX_MLP 65536
#define CLIP_MAX_LAYERS 256
#define CLIP_MAX_HEADS 1024
#define CLIP_MAX_POSITIONS 8192

/* json_parse_file's parse for clip_config_load: the SD1.5 values, overridden by the file's keys. */
static int config_parse(const cJSON *o, const char *path, void *cfg) {
    ClipConfig *c = cfg;
    clip_config_sd15(c);
    char act[32] = "quick_gelu";
    if (json_get_int(o, path, "vocab_size", 1, CLIP_MAX_VOCAB, &c->vocab_size) < 0 ||
        json_get_int(o, path, "hidden_size", 1, CLIP_MAX_WIDTH, &c->hidden) < 0 ||
        json_get_int(o, path, "intermediate_size", 1, CLIP_MAX_MLP, &c->intermediate) < 0 ||
        json_get_int(o, path, "num_hidden_layers", 1, CLIP_MAX_LAYERS, &c->layers) < 0 ||
        json_get_int(o, path, "num_attention_heads", 1, CLIP_MAX_HEADS, &c->heads) < 0 ||
        json_get_int(o, path, "max_position_embeddings", 1, CLIP_MAX_POSITIONS, &c->max_positions) < 0 ||
        json_get_float(o, path, "layer_norm_eps", &c->ln_eps) < 0 ||
        json_get_int(o, path, "bos_token_id", 0, c->vocab_size - 1, &c->bos_id) < 0 ||
        json_get_int(o, path, "eos_token_id", 0, c->vocab_size - 1, &c->eos_id) < 0 ||
        json_get_int(o, path, "pad_token_id", 0, c->vocab_size - 1, &c->pad_id) < 0 ||
        json_get_string(o, path, "hidden_act", act, sizeof act) < 0)
        return LS_ERR;
    if (!strcmp(act, "quick_gelu")) c->quick_gelu = 1;
    else if (!strcmp(act, "gelu")) c->quick_gelu = 0;
    else return ls_set_error("%s: unsupported hidden_act '%s'", path, act);
    if (c->hidden % c->heads || !(c->ln_eps > 0))
        return ls_set_error("%s: hidden_size must be divisible by num_attention_heads and layer_norm_eps "
                            "positive", path);
    return LS_OK;
}

int clip_config_load(ClipConfig *c, const char *path) {
    return json_parse_file(path, config_parse, c);
}

char *clip_config_to_json(const ClipConfig *c) {
    cJSON *o = cJSON_CreateObject();
    const char *arch[1] = {"CLIPTextModel"};
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(arch, 1));
    cJSON_AddStringToObject(o, "model_type", "clip_text_model");
    cJSON_AddNumberToObject(o, "bos_token_id", c->bos_id);
    cJSON_AddNumberToObject(o, "eos_token_id", c->eos_id);
    cJSON_AddNumberToObject(o, "pad_token_id", c->pad_id);
    cJSON_AddStringToObject(o, "hidden_act", c->quick_gelu ? "quick_gelu" : "gelu");
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(o, "layer_norm_eps", json_float(c->ln_eps));
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_positions);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(o, "projection_dim", c->hidden);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    return json_print_free(o);
}

void clip_build(Clip *m, const ClipConfig *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    wt_init(&m->wt);
    WeightTable *t = &m->wt;
    int D = c->hidden;
    char name[LS_NAME_MAX];
    int64_t te[2] = {c->vocab_size, D}, pe[2] = {c->max_positions, D};
    wt_add(t, &m->tok_emb, WINIT_NORMAL_002, 0, 2, te, "text_model.embeddings.token_embedding", "weight");
    wt_set_grad(t, &m->dtok_emb);
    wt_add(t, &m->pos_emb, WINIT_NORMAL_002, 0, 2, pe, "text_model.embeddings.position_embedding",
           "weight");
    wt_set_grad(t, &m->dpos_emb);
    m->layer = callocCheck((size_t)c->layers, sizeof *m->layer);
    for (int i = 0; i < c->layers; i++) {
        ClipLayer *l = &m->layer[i];
        const char *p = "text_model.encoder.layers";
        ls_fmt(name, "%s.%d.self_attn.k_proj", p, i);
        linear_build(&l->k, t, name, D, D, 1);
        ls_fmt(name, "%s.%d.self_attn.v_proj", p, i);
        linear_build(&l->v, t, name, D, D, 1);
        ls_fmt(name, "%s.%d.self_attn.q_proj", p, i);
        linear_build(&l->q, t, name, D, D, 1);
        ls_fmt(name, "%s.%d.self_attn.out_proj", p, i);
        linear_build(&l->o, t, name, D, D, 1);
        ls_fmt(name, "%s.%d.layer_norm1", p, i);
        norm_build(&l->ln1, t, name, D, 0, c->ln_eps);
        ls_fmt(name, "%s.%d.mlp.fc1", p, i);
        linear_build(&l->fc1, t, name, D, c->intermediate, 1);
        ls_fmt(name, "%s.%d.mlp.fc2", p, i);
        linear_build(&l->fc2, t, name, c->intermediate, D, 1);
        ls_fmt(name, "%s.%d.layer_norm2", p, i);
        norm_build(&l->ln2, t, name, D, 0, c->ln_eps);
    }
    norm_build(&m->final_ln, t, "text_model.final_layer_norm", D, 0, c->ln_eps);
}

void clip_free(Clip *m) {
    free(m->layer);
    wt_free(&m->wt);
    memset(m, 0, sizeof *m);
}

/* ---------------- forward ---------------- */

void clip_mlp_act(const ClipConfig *c, float *x, size_t n) {
    if (c->quick_gelu) op_quick_gelu_inplace(x, n);
    else op_gelu_inplace(x, n);
}

/* Training's saved buffers of one layer (clip_bwd.h), counted in acts->bytes. */
static void layer_acts_alloc(const ClipLayer *l, const ClipConfig *c, ClipActs *acts, ClipLayerActs *la) {
    int N = acts->B * acts->L;
    size_t n = (size_t)N * c->hidden, *by = &acts->bytes;
    la->mean1 = acts_buf(N, by), la->rstd1 = acts_buf(N, by);
    la->mean2 = acts_buf(N, by), la->rstd2 = acts_buf(N, by);
    la->q = acts_buf(n, by), la->k = acts_buf(n, by), la->v = acts_buf(n, by);
    la->h1 = acts_buf(n, by);
    la->f = acts_buf((size_t)N * c->intermediate, by);
    if (linear_needs_input(&l->o)) la->o = acts_buf(n, by); /* out_proj's input, only when its backward reads it */
}

/* One encoder layer (transformers' CLIPEncoderLayer): x (N,D) → y (N,D),
 *   h1 = x + out_proj(attn(q, k, v)), q/k/v = proj(ln1 x) (causal);  y = h1 + fc2(act(fc1(ln2 h1))).
 * la holds the buffers the layer writes: with keep, training's saved ones; else inference's scratch q, k,
 * v, f shared by every layer (no statistics, the stream updated in place: y may be x, and f activated in
 * place). a, o (N,D): scratch. */
static void layer_forward(const ClipLayer *l, const ClipConfig *c, const ClipLayerActs *la, int keep, float *y,
                          const float *x, float *a, float *o, int B, int L) {
    int N = B * L, D = c->hidden;
    size_t n = (size_t)N * D, ni = (size_t)N * c->intermediate;
    float *h1 = keep ? la->h1 : y;
    layernorm_forward(&l->ln1, a, la->mean1, la->rstd1, x, N);
    linear_forward(&l->q, la->q, a, N);
    linear_forward(&l->k, la->k, a, N);
    linear_forward(&l->v, la->v, a, N);
    float *att = la->o ? la->o : a; /* ln1's output is read: a is free again */
    op_attention(att, la->q, la->k, la->v, B, L, L, c->heads, D / c->heads, 1); /* causal */
    linear_forward(&l->o, o, att, N);
    add_residual(h1, x, o, n);
    layernorm_forward(&l->ln2, a, la->mean2, la->rstd2, h1, N);
    linear_forward(&l->fc1, la->f, a, N);
    float *g = la->f; /* training keeps fc1's output (the activation's input): act on a copy */
    if (keep) {
        g = sbuf(ni);
        memcpy(g, la->f, ni * sizeof(float));
    }
    clip_mlp_act(c, g, ni);
    linear_forward(&l->fc2, o, g, N);
    add_residual(y, h1, o, n);
    if (keep) pool_free(g);
}

int clip_forward_train(const Clip *m, ClipActs *acts, float *out, const int *ids, int B, int L, int skip) {
    const ClipConfig *c = &m->cfg;
    int D = c->hidden, N = B * L;
    if (acts) clip_acts_free(acts);
    if (L > c->max_positions)
        return ls_set_error("text encoder: %d tokens exceed max_position_embeddings %d", L,
                            c->max_positions);
    if (skip < 0 || skip >= c->layers)
        return ls_set_error("clip skip %d out of range (the text encoder has %d layers)", skip + 1,
                            c->layers);
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ls_set_error("token id %d is outside the text encoder's vocabulary (%d)", ids[i],
                                c->vocab_size);
    int nl = c->layers - skip;
    size_t n = (size_t)N * D, ni = (size_t)N * c->intermediate;
    ClipLayerActs scratch = {0}; /* inference: the buffers every layer writes, nothing else kept */
    float *h, *a, *o;
    if (acts) { /* the stream before each layer and after the last, the token ids, final_layer_norm's statistics */
        acts->B = B, acts->L = L, acts->n = nl;
        acts->hs = acts_array((size_t)nl + 1, sizeof *acts->hs);
        acts->layer = acts_array((size_t)nl, sizeof *acts->layer);
        for (int i = 0; i <= nl; i++) acts->hs[i] = acts_buf(n, &acts->bytes);
        acts->ids = pool_alloc((size_t)N * sizeof(int));
        memcpy(acts->ids, ids, (size_t)N * sizeof(int));
        acts->bytes += (size_t)N * sizeof(int);
        acts->mean_f = acts_buf(N, &acts->bytes), acts->rstd_f = acts_buf(N, &acts->bytes);
        h = acts->hs[0], a = sbuf(n), o = sbuf(n);
    } else {
        h = sbuf(n), a = sbuf(n);
        scratch.q = sbuf(n), scratch.k = sbuf(n), scratch.v = sbuf(n);
        o = sbuf(n);
        scratch.f = sbuf(ni);
    }
    int *dids = pool_alloc((size_t)N * sizeof(int)); /* the ids in the backend's memory, for the gather */
    memcpy(dids, ids, (size_t)N * sizeof(int));
    op_embedding(h, m->tok_emb, m->pos_emb, dids, B, L, D); /* token + position */
    pool_free(dids);
    for (int li = 0; li < nl; li++) {
        const ClipLayer *l = &m->layer[li];
        ClipLayerActs *la = acts ? &acts->layer[li] : &scratch;
        if (acts) layer_acts_alloc(l, c, acts, la);
        float *y = acts ? acts->hs[li + 1] : h;
        layer_forward(l, c, la, acts != NULL, y, h, a, o, B, L);
        h = y;
    }
    /* final_layer_norm, also after clip skip (diffusers / A1111) */
    layernorm_forward(&m->final_ln, out, acts ? acts->mean_f : NULL, acts ? acts->rstd_f : NULL, h, N);
    if (!acts) {
        pool_free(h);
        pool_free(a);
        pool_free(scratch.q);
        pool_free(scratch.k);
        pool_free(scratch.v);
        pool_free(o);
        pool_free(scratch.f);
    } else {
        pool_free(a);
        pool_free(o);
    }
    return LS_OK;
}

int clip_forward(const Clip *m, float *out, const int *ids, int B, int L, int skip) {
    return clip_forward_train(m, NULL, out, ids, B, L, skip);
}
