/* clip.c — CLIPTextModel forward (sd1-reference.md §2.9). */
#include "clip.h"

#include <string.h>

#include "jsonutil.h" // defines: json_load_file, json_get_*

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

int clip_config_load(ClipConfig *c, const char *path) {
    cJSON *o = json_load_file(path);
    if (!o) return LS_ERR;
    clip_config_sd15(c);
    char act[32] = "quick_gelu";
    int rc = LS_ERR;
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
        goto done;
    if (!strcmp(act, "quick_gelu")) c->quick_gelu = 1;
    else if (!strcmp(act, "gelu")) c->quick_gelu = 0;
    else {
        ls_set_error("%s: unsupported hidden_act '%s'", path, act);
        goto done;
    }
    if (c->hidden % c->heads || !(c->ln_eps > 0)) {
        ls_set_error("%s: hidden_size must be divisible by num_attention_heads and layer_norm_eps positive",
                     path);
        goto done;
    }
    rc = LS_OK;
done:
    cJSON_Delete(o);
    return rc;
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
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
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

int clip_forward(const Clip *m, float *out, const int *ids, int B, int L, int skip) {
    const ClipConfig *c = &m->cfg;
    int D = c->hidden, N = B * L;
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
    size_t n = (size_t)N * D;
    float *h = sbuf(n), *a = sbuf(n), *q = sbuf(n), *k = sbuf(n), *v = sbuf(n), *o = sbuf(n);
    float *mlp = sbuf((size_t)N * c->intermediate);
    op_embedding(h, m->tok_emb, m->pos_emb, ids, B, L, D);
    for (int li = 0; li < c->layers - skip; li++) {
        const ClipLayer *l = &m->layer[li];
        layernorm_forward(&l->ln1, a, NULL, NULL, h, N);
        linear_forward(&l->q, q, a, N);
        linear_forward(&l->k, k, a, N);
        linear_forward(&l->v, v, a, N);
        op_attention(a, q, k, v, B, L, L, c->heads, D / c->heads, 1); /* causal */
        linear_forward(&l->o, o, a, N);
        op_add_inplace(h, o, n);
        layernorm_forward(&l->ln2, a, NULL, NULL, h, N);
        linear_forward(&l->fc1, mlp, a, N);
        if (c->quick_gelu) op_quick_gelu_inplace(mlp, (size_t)N * c->intermediate);
        else op_gelu_inplace(mlp, (size_t)N * c->intermediate);
        linear_forward(&l->fc2, o, mlp, N);
        op_add_inplace(h, o, n);
    }
    layernorm_forward(&m->final_ln, out, NULL, NULL, h, N);
    pool_free(h);
    pool_free(a);
    pool_free(q);
    pool_free(k);
    pool_free(v);
    pool_free(o);
    pool_free(mlp);
    return LS_OK;
}
