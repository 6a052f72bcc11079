/* lycoris.h — the weight updates of LyCORIS LoHa and LoKr and DoRA's weight decomposition, as full
 * matrices (math only: lora.c reads the keys and attaches the results). Formulas as LyCORIS
 * (lycoris/modules/loha.py, lokr.py, functional/general.py) and AUTOMATIC1111 / ComfyUI compute them
 * (checked against LyCORIS and PEFT by tests/gen_lycoris_fixtures.py). Every ΔW is laid out as the layer's weight, (out, in·kh·kw) row-major. */
#ifndef LS_LYCORIS_H
#define LS_LYCORIS_H

#include <stdint.h>

/* A factor read from a file: float32 values and the tensor's shape (ndim 0 = absent). */
typedef struct {
    const float *d;
    int ndim;
    int64_t shape[4];
} LycoFactor;

/* LoHa: ΔW = (w1a·w1b) ⊙ (w2a·w2b), w1a/w2a (out, r), w1b/w2b (r, in·kh·kw). With CP-decomposed convs
 * (t1, t2 both given, (r, r, kh, kw)), w1a/w2a are (r, out) and w1b/w2b (r, in) and each half is
 * Σ_ij t[i,j,y,x]·wa[i,o]·wb[j,c] at (o, c, y, x). Writes out/in/k (in·kh·kw and k = 1 when the shapes
 * do not say k, see lora.h `flat`) and a malloc'd ΔW, unscaled, into *delta. Returns 0, or -1 with why
 * filled (shapes that do not fit). */
int lyco_loha_delta(const LycoFactor *w1a, const LycoFactor *w1b, const LycoFactor *w2a, const LycoFactor *w2b,
                    const LycoFactor *t1, const LycoFactor *t2, float **delta, int64_t *out, int64_t *in, int *k,
                    char *why, int cap);

/* LoKr: ΔW = kron(W1, W2), W1 (a, c) = w1 or w1a·w1b, W2 (b, d·kh·kw) = w2 (2-d or (b, d, kh, kw)) or
 * w2a (b, r) · w2b (r, d·kh·kw), or with t2 (r, r, kh, kw): Σ_ij t2[i,j]·w2a[i,p]·w2b[j,q], w2a (r, b),
 * w2b (r, d). out = a·b, in = c·d (k from a 4-d w2 or t2, else in = c·d·kh·kw with k = 1). Unscaled. */
int lyco_lokr_delta(const LycoFactor *w1, const LycoFactor *w1a, const LycoFactor *w1b, const LycoFactor *w2,
                    const LycoFactor *w2a, const LycoFactor *w2b, const LycoFactor *t2, float **delta,
                    int64_t *out, int64_t *in, int *k, char *why, int cap);

/* DoRA on a layer weight w (out, n), n = in·kk: V = w + dw, D = m ⊙ V / ‖V‖ with the norm taken per output
 * row (axis 0, m has out values: PEFT, LyCORIS wd_on_out) or per input channel over (out, kk) (axis 1, m
 * has in values: the DoRA paper's column norm, LyCORIS wd_on_out=False, A1111). dw is overwritten with
 * D − w (the update at strength 1). Norms in double. */
void lyco_dora_update(float *dw, const float *w, const float *m, int64_t out, int64_t in, int kk, int axis);

#endif
