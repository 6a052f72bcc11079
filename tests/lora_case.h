/* lora_case.h — what the adapter tests against PyTorch fixtures share (test_lora, test_lycoris): the
 * fixture's inputs (latent x, timestep t, context ctx, token ids), the U-Net and text-encoder outputs of a
 * model on them, and the check that a bad adapter (written here) fails to load or attach with one line naming
 * the file. */
#ifndef LS_TEST_LORA_CASE_H
#define LS_TEST_LORA_CASE_H

#include "lora.h" // defines: Lora, lora_load, lora_attach
#include "testutil.h"

typedef struct {
    float *x, *t, *ctx, *ids_f; /* (1,C,H,W), (1), (1,Tc,D), (1,L) ids as floats */
    int C, H, W, Tc, L;
    size_t n; /* numel of x */
} LoraInputs;

/* The inputs of fixture file ref (tensors "x", "t", "ctx", "ids"); free with lora_inputs_free. */
static inline void lora_inputs_load(const StFile *ref, LoraInputs *in) {
    const StTensor *xm, *cm, *im;
    in->x = fixture_get(ref, "x", &in->n, &xm);
    in->t = fixture_get(ref, "t", NULL, NULL);
    in->ctx = fixture_get(ref, "ctx", NULL, &cm);
    in->ids_f = fixture_get(ref, "ids", NULL, &im);
    in->C = (int)xm->shape[1], in->H = (int)xm->shape[2], in->W = (int)xm->shape[3];
    in->Tc = (int)cm->shape[1], in->L = (int)im->shape[1];
}

static inline void lora_inputs_free(LoraInputs *in) {
    free(in->x), free(in->t), free(in->ctx), free(in->ids_f);
}

static inline void lora_unet_out(const Model *m, const LoraInputs *in, float *out) {
    unet_forward(&m->unet, out, in->x, in->t, in->ctx, 1, in->H, in->W, in->Tc);
}

static inline void lora_te_out(const Model *m, const LoraInputs *in, float *out) {
    int ids[512];
    for (int i = 0; i < in->L; i++) ids[i] = (int)in->ids_f[i];
    CHECK(clip_forward(&m->clip, out, ids, 1, in->L, 0) == 0, "clip: %s", ls_last_error());
}

/* The U-Net output on in (into out) against ref: rel_l2(out, ref). */
static inline double lora_unet_rel(const Model *m, const LoraInputs *in, float *out, const float *ref) {
    lora_unet_out(m, in, out);
    return rel_l2(out, ref, in->n);
}

/* Whether the U-Net output on in (into out) is ref bit for bit. */
static inline int lora_unet_same(const Model *m, const LoraInputs *in, float *out, const float *ref) {
    lora_unet_out(m, in, out);
    return !memcmp(out, ref, in->n * sizeof(float));
}

/* Merged adapter a set to strength 0.25 must give what unmerging and merging it again gives (one check; o1 and out
 * are scratch U-Net outputs). */
static inline void lora_check_remerge(const Model *m, const LoraInputs *in, Lora *a, float *o1, float *out,
                                      const char *tag) {
    lora_set_strength(a, 0.25f, 0.25f);
    lora_unet_out(m, in, o1);
    lora_unmerge(a);
    lora_merge(a);
    lora_unet_out(m, in, out);
    double e = rel_l2(o1, out, in->n);
    CHECK(e < 1e-5, "%s: merged strength change vs re-merge rel L2 %.3g", tag, e);
}

/* Loading or attaching the adapter at path must fail with one error naming the file and containing needle. */
static inline void expect_adapter_error(Model *m, const char *path, const char *needle, const char *what) {
    Lora a;
    int rc = lora_load(&a, path);
    if (rc == 0) {
        rc = lora_attach(&a, m, 0);
        lora_free(&a);
    }
    CHECK(rc < 0 && strstr(ls_last_error(), needle) && strstr(ls_last_error(), path),
          "%s: expected an error naming the file and '%s', got rc=%d '%s'", what, needle, rc,
          rc < 0 ? ls_last_error() : "");
    if (rc < 0) printf("bad input (%s): %s\n", what, ls_last_error());
}

/* Write the adapter in w (then freed) to <dir>/<name>.safetensors, a check; returns the path (caller frees). */
static inline char *write_adapter(StWriter *w, const char *dir, const char *name) {
    char *path = mallocCheck(512);
    snprintf(path, 512, "%s/%s.safetensors", dir, name);
    test_writer_save(w, path);
    return path;
}

/* expect_adapter_error on the adapter in w, written first to <dir>/<name>.safetensors (write_adapter). */
static inline void expect_written_error(Model *m, StWriter *w, const char *dir, const char *name, const char *needle,
                                        const char *what) {
    char *path = write_adapter(w, dir, name);
    expect_adapter_error(m, path, needle, what);
    free(path);
}

#endif
