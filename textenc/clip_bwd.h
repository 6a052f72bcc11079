/* clip_bwd.h — CLIP text-encoder backward and the activations its training forward (clip_forward_train,
 * clip.c) saves for it: LoRA gradients (kohya's --train-text-encoder: only LoRA hooks with gradient buffers
 * (lora_grads_alloc) on the encoder layers' Linear layers — self_attn q/k/v/out_proj, mlp fc1/fc2 — receive
 * gradients; base weights, embeddings and norms stay frozen) and, after clip_full_grads_alloc, full
 * fine-tuning gradients of every text-encoder tensor (embeddings, every layer's norms and Linear
 * weights/biases, final_layer_norm): pre-training a text encoder jointly with the U-Net.
 *
 * One training step with text-encoder LoRA (train.c; captions[B], U-Net context (B, L, D)):
 *     ClipActs cacts = {0};   UNetActs uacts = {0};
 *     lora_grads_zero(&lora);                                          // every gradient accumulates
 *     clip_encode_train(&m.clip, m.tok, &cacts, ctx, captions, B, clip_skip);   // ctx (B,L,D)
 *     unet_forward_train(&m.unet, &uacts, out, xt, t, ctx, B, h, w, L);
 *     double loss = unet_mse_loss(dout, out, target, n);
 *     unet_backward(&m.unet, &uacts, dctx, dout);                      // dctx (B,L,D) = ∂loss/∂ctx
 *     clip_backward(&m.clip, &cacts, dctx);                            // += into the TE hooks' ddown/dup
 *     ... clip / AdamW over lora_trainset (U-Net and TE modules alike) ...
 *     clip_acts_free(&cacts);  unet_acts_free(&uacts);                 // pool memory: free every step
 * Full fine-tuning is the same step after clip_full_grads_alloc(&m.clip, &ts) (ts: the optimizer's list;
 * trainset_zero_grads(&ts) instead of lora_grads_zero): clip_backward then also accumulates every
 * text-encoder tensor's gradient, and the optimizer updates the encoder's weights in place.
 * The context must come from clip_encode_train every step (not the cached pipeline_encode_prompt
 * embeddings: they change as the TE LoRA trains). Caption dropout / shuffling happen before, on the text.
 *
 * Saved activations: the token ids (the rows of the token embedding's gradient) and, per layer (the rest
 * is recomputed: norms' outputs and the MLP activation):
 *   the layer's input stream (the previous layer's output), LayerNorm mean/rstd, q/k/v (never the L×L
 *   scores: the causal attention backward recomputes them), the attention output only when out_proj
 *   needs its input, the stream after attention (ln2's input) and fc1's output (pre-activation).
 * Dims: B captions, L tokens (77), N = B·L, D hidden, I intermediate, NH heads. */
#ifndef LS_CLIP_BWD_H
#define LS_CLIP_BWD_H

#include "clip.h"      // defines: Clip, ClipLayer, ClipActs, clip_forward_train
#include "tokenizer.h" // defines: Tokenizer
#include "trainset.h"  // defines: TrainSet

typedef struct {
    float *mean1, *rstd1; /* (N) layer_norm1 statistics of the layer input */
    float *q, *k, *v;     /* (N,D) projections (attention inputs) */
    float *o;             /* (N,D) attention output = out_proj's input; NULL unless out_proj needs it */
    float *h1;            /* (N,D) stream after self-attention: layer_norm2's input */
    float *mean2, *rstd2; /* (N) layer_norm2 statistics of h1 */
    float *f;             /* (N,I) fc1 output, the activation's input */
} ClipLayerActs;

struct ClipActs {
    int B, L, n;          /* n = layers run = layers − skip */
    int *ids;             /* (N) copy of the token ids */
    float **hs;           /* [n+1] (N,D) stream: hs[0] = embeddings, hs[i+1] = layer i's output;
                           * hs[n] is final_layer_norm's input */
    ClipLayerActs *layer; /* [n] */
    float *mean_f, *rstd_f; /* (N) final_layer_norm statistics of hs[n] */
    size_t bytes;         /* total bytes saved */
};

/* dout (B,L,D) = ∂loss/∂out for the forward that filled acts. ACCUMULATES ddown/dup of every live LoRA hook
 * with gradient buffers on the layers that ran, and every gradient buffer the encoder has (full
 * fine-tuning: Linear dw/db, LayerNorm dg/db, final_layer_norm's, the embeddings' — the token embedding's
 * rows of the ids that occur, the position embedding's first L rows); nothing else gets a gradient (the
 * token ids are discrete; layers after the clip-skip output did not run: theirs stay untouched). Layers
 * below the lowest trainable one are not visited (with embedding gradients every layer is). acts is not
 * modified. */
void clip_backward(const Clip *m, const ClipActs *acts, const float *dout);

void clip_acts_free(ClipActs *acts);

/* The MLP activation in place on n values: quick_gelu or gelu, as the config says (forward and backward). */
void clip_mlp_act(const ClipConfig *c, float *x, size_t n);

/* Full fine-tuning of the text encoder (as unet_full_grads_alloc): make every text-encoder weight a private
 * writable float32 copy (wt_make_writable: one more encoder of float32 memory when the checkpoint was an
 * mmapped F32 file; nothing when it was converted at load), give every tensor — token and position
 * embeddings, every layer's layer_norm1/2 and q/k/v/out_proj, fc1/fc2 weights and biases, final_layer_norm
 * — a gradient buffer (one zeroed arena of the encoder's size) and append every tensor to ts under its
 * checkpoint key ("text_model.embeddings.token_embedding.weight", ...; the WeightTable's names), value = the
 * weight the forward reads, so the optimizer updates the model in place. The encoder must not have merged
 * adapters (LS_ERR). clip_backward then accumulates every tensor's gradient. */
int clip_full_grads_alloc(Clip *m, TrainSet *ts);
/* Free the gradient arena: the encoder is frozen again (its weights keep their trained values). */
void clip_full_grads_free(Clip *m);

/* Encode B captions exactly as pipeline_encode_prompt does one (tokenizer_encode: BOS, truncation to
 * model_max_length − 2 tokens with a warning, EOS, padding; clip_skip in A1111 numbering, 1 = last
 * layer), but through clip_forward_train: ctx (B, L, D) with L = tokenizer_max_length(tok), acts filled
 * for clip_backward. LS_ERR (acts freed) on a tokenizer or encoder error. */
int clip_encode_train(const Clip *m, const Tokenizer *tok, ClipActs *acts, float *ctx,
                      const char *const *texts, int B, int clip_skip);

#endif
