/* clip.h — CLIPTextModel (transformers naming, "text_model." keys), the SD-1.x text encoder:
 * token + position embeddings, pre-LN transformer layers with causal self-attention and quick_gelu MLP,
 * final LayerNorm. Output (B, L, D) is the U-Net's cross-attention context. */
#ifndef LS_CLIP_H
#define LS_CLIP_H

#include "layers.h" // defines: Linear, Norm

typedef struct {
    int vocab_size, hidden, intermediate, layers, heads, max_positions;
    int quick_gelu; /* hidden_act: 1 = quick_gelu (SD1), 0 = gelu (SD2) */
    float ln_eps;
    int bos_id, eos_id, pad_id; /* as written to config.json */
} ClipConfig;

void clip_config_sd15(ClipConfig *c);
void clip_config_tiny(ClipConfig *c);
int clip_config_load(ClipConfig *c, const char *path);
char *clip_config_to_json(const ClipConfig *c);

typedef struct {
    Norm ln1, ln2;
    Linear q, k, v, o; /* self_attn.{q,k,v,out}_proj, all with bias */
    Linear fc1, fc2;   /* mlp */
} ClipLayer;

typedef struct {
    ClipConfig cfg;
    float *tok_emb; /* (vocab, D) */
    float *pos_emb; /* (max_positions, D) */
    float *dtok_emb, *dpos_emb; /* full fine-tuning: their gradients (clip_full_grads_alloc, clip_bwd.h);
                                 * NULL (the default): frozen */
    ClipLayer *layer;
    Norm final_ln;
    WeightTable wt;
} Clip;

void clip_build(Clip *m, const ClipConfig *c);
void clip_free(Clip *m);

/* out (B, L, D) = final_layer_norm(hidden state after layer (layers - skip)).
 * skip = 0 uses the last layer (A1111 "Clip skip: 1"); skip = 1 the penultimate (A1111 2, diffusers
 * clip_skip=1). ids must be < vocab_size and L ≤ max_positions: LS_ERR otherwise. */
int clip_forward(const Clip *m, float *out, const int *ids, int B, int L, int skip);

/* The same forward for training: the same output bits and checks, and acts (clip_bwd.h) receives what
 * clip_backward reads. acts must be zero-initialised or from an earlier call (its buffers are freed and
 * reallocated); NULL is clip_forward. */
typedef struct ClipActs ClipActs;
int clip_forward_train(const Clip *m, ClipActs *acts, float *out, const int *ids, int B, int L, int skip);

#endif
